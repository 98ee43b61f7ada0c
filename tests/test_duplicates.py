"""Near-duplicates and contamination (review.duplicates): flags at import within a project and against a
reference set, the editor's read-only check, re-checks, dismissing, the threshold, stale flags, the
`medreview duplicates` command and the import's report, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from review import accounts, administration, duplicates, editing, similarity, workflow
from review.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from review.importing import ImportReport, import_items
from review.setup import prepare_database
from storage import projects
from storage import similarity as signatures_store
from storage.db import make_engine, read_session, write_session
from storage.models import AuditEvent, DuplicateFlag, Item, ItemSignature, Project

PASSWORD = "duplicates-test-pw"
MEDQA = "medqa/medqa_5options_test.jsonl"
HARD_30 = "healthbench/hard_sample_30.jsonl"
ADDED = " She also mentions that her sister had the same problem last year."


# --- helpers ---------------------------------------------------------------------------------------------------


def shared_rows(shared_data: Path, name: str) -> list[dict[str, Any]]:
    with (shared_data / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def run_import(engine: Engine, project: str, rows: list[dict[str, Any]], **options: Any) -> ImportReport:
    with write_session(engine) as session:
        return import_items(session, project_name=project, data=jsonl(rows), filename=f"{project}.jsonl", **options)


def project_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        project = projects.get_project_by_name(session=session, name=name)
        assert project is not None and project.id is not None
        return project.id


def item_id(engine: Engine, project: str, external_id: str) -> int:
    with read_session(engine) as session:
        found = session.exec(
            select(Item.id).where(
                Item.project_id == project_id(engine, project),
                Item.external_id == external_id,
                Item.is_current == True,  # noqa: E712
            )
        ).first()
        assert found is not None
        return found


def stored_flags(engine: Engine) -> list[tuple[str, str, str, float, str]]:
    """Every flag as (flagged item, matched item, scope, similarity, status), by external id."""
    with read_session(engine) as session:
        names = {i.id: i.external_id for i in session.exec(select(Item)).all()}
        flags = session.exec(select(DuplicateFlag).order_by(col(DuplicateFlag.id))).all()
        return [(names[f.item_id], names[f.match_item_id], f.scope, f.similarity, f.status) for f in flags]


def changed_words(text: str, *positions: int) -> str:
    words = text.split(" ")
    for position in positions:
        words[position] = "persistent"
    return " ".join(words)


def near_copy_mcq(row: dict[str, Any], external_id: str) -> dict[str, Any]:
    """A MedQA row with two words changed, its ages and values changed, the options reordered."""
    question = re.sub(r"\d+", lambda m: str(int(m.group()) + 4), changed_words(row["question"], 5, 12))
    letters = list(row["options"])
    texts = list(reversed(list(row["options"].values())))
    options = dict(zip(letters, texts, strict=True))
    key = next(letter for letter, text in options.items() if text == row["options"][row["answer_idx"]])
    return {"id": external_id, "question": question, "options": options, "answer_idx": key}


def near_copy_open(row: dict[str, Any], external_id: str) -> dict[str, Any]:
    """A HealthBench row under another id with a sentence added to its last turn."""
    prompt = [dict(message) for message in row["prompt"]]
    prompt[-1]["content"] += ADDED
    return {"prompt_id": external_id, "prompt": prompt, "rubrics": row["rubrics"]}


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    """A curator, an admin and a physician; their ids by role."""
    ids = {}
    with write_session(engine) as session:
        for username, role in (("cur", "curator"), ("adm", "admin"), ("doc", "annotator")):
            ids[role] = accounts.create_user(session, username=username, role=role, password=PASSWORD).user_id
    return ids


@pytest.fixture
def contaminated(engine: Engine, shared_data: Path) -> dict[str, Any]:
    """The HealthBench Hard sample as a reference set, then an internal project with near-copies of three of its
    prompts and of two MedQA items, and two MedQA items of its own."""
    hard = shared_rows(shared_data, HARD_30)
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "HealthBench", hard)
    with write_session(engine) as session:
        duplicates.set_reference(
            session, project_id=project_id(engine, "HealthBench"), is_reference=True, actor_id=None
        )
    long_prompts = [row for row in hard if len(" ".join(m["content"] for m in row["prompt"]).split()) >= 80][:3]
    report = run_import(engine, "Internal", [near_copy_open(row, f"copy-{n}") for n, row in enumerate(long_prompts)])
    own = [{"id": f"own-{n}", **{k: medqa[n][k] for k in ("question", "options", "answer_idx")}} for n in (0, 1)]
    assert run_import(engine, "Internal", own).near_duplicates == 0
    return {"report": report, "copied": [row["prompt_id"] for row in long_prompts], "medqa": medqa}


# --- within one project --------------------------------------------------------------------------------------


def test_import_of_medqa_flags_exactly_its_two_known_near_copies(engine, shared_data):
    """Test that importing the MedQA test set flags its two near-duplicate pairs (lines 383 ~ 317, 1130 ~ 536), on
    the later item, and nothing else among its 1,273 items; the report lists them."""
    medqa = shared_rows(shared_data, MEDQA)
    report = run_import(engine, "MedQA", medqa)
    ids = {n: f"medqa-{n}" for n in (317, 383, 536, 1130)}
    with read_session(engine) as session:
        by_question = {i.question: i.external_id for i in session.exec(select(Item)).all()}
    ids = {line: by_question[medqa[line - 1]["question"]] for line in ids}
    assert stored_flags(engine) == [
        (ids[383], ids[317], "project", 0.7656, "open"),
        (ids[1130], ids[536], "project", 0.7031, "open"),
    ]
    assert report.near_duplicates == 2
    assert report.duplicates == [
        {"external_id": ids[383], "match_external_id": ids[317], "match_project": "MedQA", "scope": "project",
         "similarity": 0.7656},
        {"external_id": ids[1130], "match_external_id": ids[536], "match_project": "MedQA", "scope": "project",
         "similarity": 0.7031},
    ]  # fmt: skip
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(ItemSignature)).one() == 1273


def test_near_copies_in_one_file_are_flagged_once_on_the_later_item(engine, shared_data):
    """Test that an item and its near-copy (words, ages and option order changed) imported together give one flag,
    on the copy, and that distinct items in the same file give none."""
    medqa = shared_rows(shared_data, MEDQA)
    original = {"id": "orig", **{k: medqa[10][k] for k in ("question", "options", "answer_idx")}}
    others = [{"id": f"other-{n}", **{k: medqa[n][k] for k in ("question", "options", "answer_idx")}} for n in (20, 21)]
    report = run_import(engine, "P", [original, *others, near_copy_mcq(medqa[10], "copy")])
    [(flagged, match, scope, similarity, status)] = stored_flags(engine)
    assert (flagged, match, scope, status) == ("copy", "orig", "project", "open")
    assert 0.7 <= similarity < 1.0
    assert report.near_duplicates == 1
    assert report.duplicates[0]["external_id"] == "copy" and report.duplicates[0]["match_external_id"] == "orig"


def test_a_later_import_is_checked_against_the_items_already_there(engine, shared_data):
    """Test that a near-copy imported into a project later is flagged against the stored original."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [{"id": "orig", **{k: medqa[3][k] for k in ("question", "options", "answer_idx")}}])
    assert stored_flags(engine) == []
    report = run_import(engine, "P", [near_copy_mcq(medqa[3], "copy")])
    assert [(f[0], f[1], f[2]) for f in stored_flags(engine)] == [("copy", "orig", "project")]
    assert report.duplicates[0]["match_project"] == "P"


def test_items_too_short_to_compare_are_never_matched(engine):
    """Test that identical one-word items are not flagged and that a scan counts them as too short."""
    # "Diagnosis" and two options of punctuation only: a single word
    row = {"question": "Diagnosis", "options": {"A": "?", "B": "!"}, "answer_idx": "A"}
    rows = [{"id": f"short-{n}", **row} for n in range(3)]
    report = run_import(engine, "Short", rows)
    assert report.near_duplicates == 0
    with write_session(engine) as session:
        scan = duplicates.scan_project(session, project_id=project_id(engine, "Short"))
    assert (scan.items, scan.without_text, scan.flags_added, scan.open_flags) == (3, 3, 0, 0)
    assert stored_flags(engine) == []


# --- against a reference set ------------------------------------------------------------------------------------


def test_a_reference_set_catches_copies_imported_into_an_internal_project(engine, contaminated):
    """Test that internal near-copies of reference prompts are flagged with scope 'reference' on the internal
    item, the report names the reference items, and the internal project's own items are not flagged."""
    report = contaminated["report"]
    copied = contaminated["copied"]
    flags = stored_flags(engine)
    assert sorted((f[0], f[1], f[2], f[4]) for f in flags) == [
        (f"copy-{n}", copied[n], "reference", "open") for n in range(3)
    ]
    assert all(0.7 <= f[3] < 1.0 for f in flags)
    assert report.near_duplicates == 3
    listed = sorted(
        (d["external_id"], d["match_external_id"], d["match_project"], d["scope"]) for d in report.duplicates
    )
    assert listed == [(f"copy-{n}", copied[n], "HealthBench", "reference") for n in range(3)]
    with read_session(engine) as session:
        internal = project_id(engine, "Internal")
        assert {f.project_id for f in session.exec(select(DuplicateFlag)).all()} == {internal}


def test_a_reference_set_marked_later_flags_the_copies_already_imported(engine, shared_data):
    """Test that marking a project as a reference set afterwards flags the copies of its items that other projects
    already hold, with scope 'reference', audited."""
    hard = shared_rows(shared_data, HARD_30)
    long_row = next(row for row in hard if len(row["prompt"][-1]["content"].split()) >= 80)
    run_import(engine, "Internal", [near_copy_open(long_row, "copy")])
    run_import(engine, "Public", hard)
    assert stored_flags(engine) == []  # two ordinary projects are not compared
    with write_session(engine) as session:
        duplicates.set_reference(session, project_id=project_id(engine, "Public"), is_reference=True, actor_id=None)
    assert [(f[0], f[1], f[2]) for f in stored_flags(engine)] == [("copy", long_row["prompt_id"], "reference")]
    with read_session(engine) as session:
        public = session.get(Project, project_id(engine, "Public"))
        assert public is not None and public.is_reference
        event = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "project").order_by(col(AuditEvent.id).desc())
        ).first()
        assert event is not None and event.detail == {"is_reference": {"before": False, "after": True}}  # fmt: skip


def test_the_admin_project_settings_mark_and_unmark_a_reference_set_with_its_flags(engine, shared_data, people):
    """Test that marking a project as a reference set through the Admin page's project settings flags copies
    already imported elsewhere, and un-marking it there resolves them, as duplicates.set_reference does."""
    hard = shared_rows(shared_data, HARD_30)
    long_row = next(row for row in hard if len(row["prompt"][-1]["content"].split()) >= 80)
    run_import(engine, "Internal", [near_copy_open(long_row, "copy")])
    run_import(engine, "Public", hard)
    public = project_id(engine, "Public")
    with write_session(engine) as session:
        administration.update_project_settings(session, project_id=public, actor_id=people["admin"], is_reference=True)
        session.commit()
    assert [(f[0], f[1], f[2], f[4]) for f in stored_flags(engine)] == [
        ("copy", long_row["prompt_id"], "reference", "open")
    ]
    with write_session(engine) as session:
        administration.update_project_settings(session, project_id=public, actor_id=people["admin"], is_reference=False)
        session.commit()
    assert [f[4] for f in stored_flags(engine)] == ["resolved"]


def test_a_project_that_stops_being_a_reference_set_resolves_its_flags(engine, contaminated):
    """Test that un-marking a reference set resolves the open flags against its items."""
    with write_session(engine) as session:
        duplicates.set_reference(
            session, project_id=project_id(engine, "HealthBench"), is_reference=False, actor_id=None
        )
    assert {f[4] for f in stored_flags(engine)} == {"resolved"}
    with read_session(engine) as session:
        assert duplicates.project_flags(session, project_id=project_id(engine, "Internal")) == []
        assert len(duplicates.project_flags(session, project_id=project_id(engine, "Internal"), status=None)) == 3


# --- the editor's check -----------------------------------------------------------------------------------------


def test_find_matches_checks_unsaved_content_against_the_project_and_references_without_writing(
    engine, contaminated, shared_data
):
    """Test that find_matches finds a reference prompt and an own item in unsaved content, best first, writes
    nothing, and leaves out the item being edited."""
    hard = shared_rows(shared_data, HARD_30)
    copied = contaminated["copied"]
    source = next(row for row in hard if row["prompt_id"] == copied[0])
    internal = project_id(engine, "Internal")
    turns = [dict(m) for m in source["prompt"]]
    turns[-1]["content"] = changed_words(turns[-1]["content"], 3)
    before = stored_flags(engine)
    with read_session(engine) as session:
        signatures_before = session.exec(select(func.count()).select_from(ItemSignature)).one()
        matches = duplicates.find_matches(
            session, project_id=internal, kind="open", conversation=turns, question=None, options={}
        )
        edited = duplicates.find_matches(
            session,
            project_id=internal,
            kind="open",
            conversation=turns,
            question=None,
            options={},
            exclude_external_id="copy-0",
        )
        assert session.exec(select(func.count()).select_from(ItemSignature)).one() == signatures_before
    assert [(m.external_id, m.project, m.scope) for m in matches] == [
        (copied[0], "HealthBench", "reference"),
        ("copy-0", "Internal", "project"),
    ]
    assert matches[0].similarity > matches[1].similarity >= 0.7
    assert matches[0].summary and matches[0].flag_id is None
    assert [m.external_id for m in edited] == [copied[0]]
    assert stored_flags(engine) == before


def test_find_matches_respects_threshold_limit_and_short_text(engine, shared_data):
    """Test that find_matches keeps to the threshold and the limit, and finds nothing for too little text."""
    medqa = shared_rows(shared_data, MEDQA)
    rows = [{"id": f"same-{n}", **{k: medqa[7][k] for k in ("question", "options", "answer_idx")}} for n in range(4)]
    run_import(engine, "P", rows)
    copy = near_copy_mcq(medqa[7], "x")
    pid = project_id(engine, "P")
    with read_session(engine) as session:

        def find(**options: Any) -> list[duplicates.Match]:
            return duplicates.find_matches(
                session, project_id=pid, kind="mcq", conversation=[], question=copy["question"],
                options=copy["options"], **options,
            )  # fmt: skip

        everything = find()
        similarity = everything[0].similarity
        assert [m.external_id for m in everything] == [f"same-{n}" for n in range(4)]
        assert {m.similarity for m in everything} == {similarity} and 0.7 <= similarity < 1.0
        assert [m.external_id for m in find(limit=2)] == ["same-0", "same-1"]
        assert find(threshold=similarity + 0.01) == []
        assert len(find(threshold=similarity)) == 4
        assert (
            duplicates.find_matches(
                session, project_id=pid, kind="mcq", conversation=[], question="Diagnosis", options={"A": "?"}
            )
            == []
        )
        with pytest.raises(duplicates.DuplicateError, match="threshold"):
            find(threshold=0)


# --- re-checks, dismissing, threshold -----------------------------------------------------------------------------


def test_checking_again_adds_no_flag_and_returns_the_stored_ones(engine, contaminated):
    """Test that check_items and scan_project on items already checked add no flag and return the stored ones."""
    internal = project_id(engine, "Internal")
    copy_id = item_id(engine, "Internal", "copy-0")
    with read_session(engine) as session:
        flag_id = session.exec(select(DuplicateFlag.id).where(DuplicateFlag.item_id == copy_id)).one()
    before = stored_flags(engine)
    with write_session(engine) as session:
        again = duplicates.check_items(session, item_ids=[copy_id])
        scan = duplicates.scan_project(session, project_id=internal)
    assert [(checked, m.external_id, m.scope, m.flag_id, m.status) for checked, m in again] == [
        (copy_id, contaminated["copied"][0], "reference", flag_id, "open")
    ]
    assert (scan.items, scan.signed, scan.matches, scan.flags_added, scan.open_flags) == (5, 0, 3, 0, 3)
    assert stored_flags(engine) == before


def test_scan_signs_items_imported_without_signatures(engine, contaminated):
    """Test that a scan signs the current items that have no signature and finds their copies again."""
    with write_session(engine) as session:
        session.exec(ItemSignature.__table__.delete())  # type: ignore[attr-defined]
        session.exec(DuplicateFlag.__table__.delete())  # type: ignore[attr-defined]
    with write_session(engine) as session:
        reference = duplicates.scan_project(session, project_id=project_id(engine, "HealthBench"))
        internal = duplicates.scan_project(session, project_id=project_id(engine, "Internal"))
    assert (reference.signed, reference.flags_added) == (30, 0)  # the internal items have no signature yet
    assert (internal.signed, internal.flags_added, internal.open_flags) == (5, 3, 3)
    assert sorted(f[0] for f in stored_flags(engine)) == ["copy-0", "copy-1", "copy-2"]


def test_a_curator_dismisses_a_flag_audited_and_a_check_does_not_reopen_it(engine, contaminated, people):
    """Test that dismissing stores status, note, who and when, is audited with before and after, hides the flag
    from the open lists, survives a re-check, and can be reopened."""
    internal = project_id(engine, "Internal")
    copy_id = item_id(engine, "Internal", "copy-1")
    with read_session(engine) as session:
        [flag] = duplicates.flags_for_item(session, item_id=copy_id)
    with write_session(engine) as session:
        duplicates.set_flag_status(
            session, flag_id=flag.flag_id, status="dismissed", actor_id=people["curator"], note="  Same topic only. "
        )
    with read_session(engine) as session:
        stored = session.get(DuplicateFlag, flag.flag_id)
        assert stored is not None
        assert (stored.status, stored.note, stored.decided_by) == ("dismissed", "Same topic only.", people["curator"])
        assert stored.decided_at is not None
        event = session.exec(select(AuditEvent).where(AuditEvent.entity == "duplicate_flag")).one()
        assert (event.action, event.entity_id, event.actor_id, event.project_id) == (
            "dismiss_duplicate", flag.flag_id, people["curator"], internal,
        )  # fmt: skip
        assert event.detail["before"] == {"status": "open", "note": ""}
        assert event.detail["after"] == {"status": "dismissed", "note": "Same topic only."}
        assert duplicates.flags_for_item(session, item_id=copy_id) == []
        [closed] = duplicates.flags_for_item(session, item_id=copy_id, include_closed=True)
        assert (closed.status, closed.external_id) == ("dismissed", flag.external_id)
        assert len(duplicates.project_flags(session, project_id=internal)) == 2
        assert [f.status for f in duplicates.project_flags(session, project_id=internal, status="dismissed")] == [
            "dismissed"
        ]
    with write_session(engine) as session:
        duplicates.scan_project(session, project_id=internal)
        again = duplicates.check_items(session, item_ids=[copy_id])
    assert [m.status for _, m in again] == ["dismissed"]
    assert len(stored_flags(engine)) == 3
    with write_session(engine) as session:
        duplicates.set_flag_status(session, flag_id=flag.flag_id, status="open", actor_id=people["admin"])
    with read_session(engine) as session:
        assert [m.status for m in duplicates.flags_for_item(session, item_id=copy_id)] == ["open"]
        decisions = select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "duplicate_flag")
        assert session.exec(decisions).one() == 2


def test_the_flag_is_seen_from_both_items(engine, contaminated):
    """Test that the reference item's flags show the internal copy, and the copy's show the reference item."""
    copy_id = item_id(engine, "Internal", "copy-2")
    original_id = item_id(engine, "HealthBench", contaminated["copied"][2])
    with read_session(engine) as session:
        [from_copy] = duplicates.flags_for_item(session, item_id=copy_id)
        [from_original] = duplicates.flags_for_item(session, item_id=original_id)
    assert (from_copy.item_id, from_copy.project, from_copy.scope) == (original_id, "HealthBench", "reference")
    assert (from_original.item_id, from_original.project, from_original.flag_id) == (
        copy_id, "Internal", from_copy.flag_id,
    )  # fmt: skip


def test_only_curators_and_admins_decide_and_decisions_are_checked(engine, contaminated, people):
    """Test that a physician cannot dismiss a flag, and that unknown statuses and flags are refused."""
    with read_session(engine) as session:
        flag_id = duplicates.project_flags(session, project_id=project_id(engine, "Internal"))[0].flag_id
    with write_session(engine) as session:
        with pytest.raises(duplicates.DuplicateError, match="curator or an admin"):
            duplicates.set_flag_status(session, flag_id=flag_id, status="dismissed", actor_id=people["annotator"])
        with pytest.raises(duplicates.DuplicateError, match="status"):
            duplicates.set_flag_status(session, flag_id=flag_id, status="resolved", actor_id=people["curator"])
        with pytest.raises(duplicates.DuplicateError, match="no longer exists"):
            duplicates.set_flag_status(session, flag_id=9999, status="dismissed", actor_id=people["curator"])
        with pytest.raises(duplicates.DuplicateError, match="curator or an admin"):
            duplicates.set_threshold(session, project_id=1, threshold=0.8, actor_id=people["annotator"])
    assert {f[4] for f in stored_flags(engine)} == {"open"}


def test_the_threshold_decides_what_is_flagged_and_is_audited(engine, shared_data, people):
    """Test that a project's higher threshold leaves a near-copy unflagged, a scan at a lower one flags it, and a
    change of threshold is checked and audited."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [{"id": "orig", **{k: medqa[30][k] for k in ("question", "options", "answer_idx")}}])
    pid = project_id(engine, "P")
    with write_session(engine) as session:
        duplicates.set_threshold(session, project_id=pid, threshold=0.99, actor_id=people["curator"])
    report = run_import(engine, "P", [near_copy_mcq(medqa[30], "copy")])
    assert report.near_duplicates == 0 and stored_flags(engine) == []
    with write_session(engine) as session:
        scan = duplicates.scan_project(session, project_id=pid, threshold=0.7)
        assert scan.flags_added == 1 and scan.threshold == 0.7
        project = session.get(Project, pid)
        assert project is not None and project.duplicate_threshold == 0.99  # a one-off threshold is not stored
        for wrong in (0, -0.1, 1.5, float("nan"), "high"):
            with pytest.raises(duplicates.DuplicateError, match="threshold"):
                duplicates.set_threshold(session, project_id=pid, threshold=wrong, actor_id=people["curator"])  # type: ignore[arg-type]
    with read_session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "project", AuditEvent.action == "update")
        ).all()
        assert [e.detail for e in events] == [{"duplicate_threshold": {"before": 0.7, "after": 0.99}}]  # fmt: skip


def test_a_new_version_or_a_retired_item_resolves_its_open_flags(engine, shared_data):
    """Test that a flagged item replaced by a new version has its flag resolved and its new version checked."""
    medqa = shared_rows(shared_data, MEDQA)
    original = {"id": "orig", **{k: medqa[40][k] for k in ("question", "options", "answer_idx")}}
    run_import(engine, "P", [original, near_copy_mcq(medqa[40], "copy")])
    other = {"id": "copy", **{k: medqa[41][k] for k in ("question", "options", "answer_idx")}}
    report = run_import(engine, "P", [other], on_conflict="new-version")
    assert report.items_new_version == 1 and report.near_duplicates == 0
    assert [f[4] for f in stored_flags(engine)] == ["resolved"]
    with read_session(engine) as session:
        assert duplicates.project_flags(session, project_id=project_id(engine, "P")) == []


def test_many_checked_at_once_find_what_one_at_a_time_finds(engine, shared_data):
    """Test that a file of 60 items with exact and near copies (checked together, in bands) gives the same flags
    as the same items imported one by one (each compared with every stored item directly)."""
    medqa = shared_rows(shared_data, MEDQA)
    rows: list[dict[str, Any]] = []
    for n in range(20):
        base = {k: medqa[100 + n][k] for k in ("question", "options", "answer_idx")}
        rows += [{"id": f"item-{n}", **base}, near_copy_mcq(medqa[100 + n], f"near-{n}")]
        if n % 2 == 0:
            rows.append({"id": f"exact-{n}", **base})
    rows += [{"id": f"other-{n}", **{k: medqa[300 + n][k] for k in ("question", "options", "answer_idx")}}
             for n in range(60 - len(rows))]  # fmt: skip
    assert len(rows) == 60
    together = run_import(engine, "Together", rows)
    for row in rows:
        run_import(engine, "One by one", [row])
    with read_session(engine) as session:
        names = {i.id: (i.external_id, i.project_id) for i in session.exec(select(Item)).all()}
        flags = session.exec(select(DuplicateFlag)).all()
    by_project: dict[int, set[tuple[str, str, float]]] = {}
    for flag in flags:
        by_project.setdefault(flag.project_id, set()).add(
            (names[flag.item_id][0], names[flag.match_item_id][0], flag.similarity)
        )
    assert by_project[project_id(engine, "Together")] == by_project[project_id(engine, "One by one")]
    assert len(by_project[project_id(engine, "Together")]) == together.near_duplicates == 20 + 10 * 2
    assert ("exact-0", "item-0", 1.0) in by_project[project_id(engine, "Together")]


# --- the command line -----------------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code: Any = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code or 0), out, err


def test_cli_import_prints_the_near_duplicates_and_lists_them_in_json(engine, shared_data, tmp_path, capsys):
    """Test that `medreview import` prints how many near-duplicates it flagged and lists them under --json."""
    medqa = shared_rows(shared_data, MEDQA)
    first = tmp_path / "first.jsonl"
    first.write_bytes(jsonl([{"id": "orig", **{k: medqa[5][k] for k in ("question", "options", "answer_idx")}}]))
    second = tmp_path / "second.jsonl"
    second.write_bytes(jsonl([near_copy_mcq(medqa[5], "copy")]))
    code, out, err = run_cli(capsys, "import", str(first), "--project", "P")
    assert code == EXIT_OK and "near-duplicates" not in out
    code, out, err = run_cli(capsys, "import", str(second), "--project", "P")
    assert code == EXIT_OK, err
    similarity = stored_flags(engine)[0][3]
    assert out.splitlines()[1:] == [
        "1 near-duplicates flagged (new item, similarity, the item it nearly copies):",
        f"  copy  {similarity:.2f}  orig (P, project)",
    ]
    third = tmp_path / "third.jsonl"
    third.write_bytes(jsonl([near_copy_mcq(medqa[5], "copy-2")]))
    code, out, err = run_cli(capsys, "import", str(third), "--project", "P", "--json")
    payload = json.loads(out)
    assert code == EXIT_OK and payload["ok"] is True
    assert payload["near_duplicates"] == 2  # the same text as "copy", and near "orig"
    assert payload["duplicates"] == [
        {"external_id": "copy-2", "match_external_id": "copy", "match_project": "P", "scope": "project",
         "similarity": 1.0},
        {"external_id": "copy-2", "match_external_id": "orig", "match_project": "P", "scope": "project",
         "similarity": similarity},
    ]  # fmt: skip


def test_cli_duplicates_scans_sets_and_lists_open_flags(engine, contaminated, capsys):
    """Test that `medreview duplicates` scans a project, prints its open flags, sets the threshold and reference
    flag when asked, and prints JSON with --json."""
    copied = contaminated["copied"]
    code, out, err = run_cli(capsys, "duplicates", "--project", "Internal")
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert (
        lines[0]
        == "Internal: 5 items checked (0 signed now, 0 too short to compare), threshold 0.70; 0 new flags, 3 open"
    )
    assert sorted(line.split()[0] + " " + line.split()[2] for line in lines[1:]) == sorted(
        f"copy-{n} {copied[n]}" for n in range(3)
    )
    assert all(line.endswith("(HealthBench, reference)") for line in lines[1:])
    code, out, err = run_cli(capsys, "duplicates", "--project", "Internal", "--threshold", "0.95", "--json")
    assert code == EXIT_OK, err
    payload = json.loads(out)
    assert (payload["ok"], payload["threshold"], payload["items"], payload["open_flags"]) == (True, 0.95, 5, 3)
    assert {f["item_external_id"] for f in payload["flags"]} == {"copy-0", "copy-1", "copy-2"}
    assert {f["scope"] for f in payload["flags"]} == {"reference"}
    code, out, err = run_cli(capsys, "duplicates", "--project", "HealthBench", "--json")
    assert code == EXIT_OK, err
    copies = json.loads(out)["flags"]  # a reference set lists the copies of its items in other projects
    assert sorted((f["item_project"], f["item_external_id"], f["match_project"]) for f in copies) == [
        ("Internal", f"copy-{n}", "HealthBench") for n in range(3)
    ]
    code, out, err = run_cli(capsys, "duplicates", "--project", "HealthBench", "--no-reference", "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["flags"] == []
    with read_session(engine) as session:
        internal = session.get(Project, project_id(engine, "Internal"))
        reference = session.get(Project, project_id(engine, "HealthBench"))
        assert internal is not None and internal.duplicate_threshold == 0.95
        assert reference is not None and not reference.is_reference
    assert {f[4] for f in stored_flags(engine)} == {"resolved"}


def test_cli_duplicates_reference_marks_a_reference_set_and_reports_the_copies_found(engine, shared_data, capsys):
    """Test that `duplicates --reference` on a public set imported after an internal copy reports the new flag."""
    hard = shared_rows(shared_data, HARD_30)
    long_row = next(row for row in hard if len(row["prompt"][-1]["content"].split()) >= 80)
    run_import(engine, "Internal", [near_copy_open(long_row, "copy")])
    run_import(engine, "Public", hard)
    code, out, err = run_cli(capsys, "duplicates", "--project", "Public", "--reference")
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert lines[0] == (
        "Public: 30 items checked (0 signed now, 0 too short to compare), threshold 0.70; 1 new flags, 1 open"
    )
    assert re.fullmatch(rf"  copy  0\.\d\d  {long_row['prompt_id']} \(Public, reference\)", lines[1])
    assert len(lines) == 2
    with read_session(engine) as session:
        public = session.get(Project, project_id(engine, "Public"))
        assert public is not None and public.is_reference


def test_cli_duplicates_bad_input_and_usage(engine, contaminated, capsys):
    """Test exit 1 for a bad threshold or an unknown project (nothing written) and exit 2 for both reference options."""
    before = stored_flags(engine)
    code, out, err = run_cli(capsys, "duplicates", "--project", "Internal", "--threshold", "1.5")
    assert code == EXIT_INVALID
    assert err == "error: threshold: '1.5' must be more than 0 and at most 1 (e.g. 0.7)\n"
    code, out, err = run_cli(capsys, "duplicates", "--project", "Internal", "--threshold", "often", "--json")
    assert code == EXIT_INVALID
    assert json.loads(out) == {"ok": False, "errors": ["threshold: 'often' is not a number from 0 to 1"]}
    code, out, err = run_cli(capsys, "duplicates", "--project", "Nope")
    assert code == EXIT_INVALID and "there is no project named 'Nope'" in err
    code, out, err = run_cli(capsys, "duplicates", "--project", "Internal", "--reference", "--no-reference")
    assert code == EXIT_USAGE and "not allowed with argument" in err
    with read_session(engine) as session:
        internal = session.get(Project, project_id(engine, "Internal"))
        assert internal is not None and internal.duplicate_threshold == 0.7
    assert stored_flags(engine) == before


# --- signatures kept in memory ----------------------------------------------------------------------------------


def mcq_row(medqa: list[dict[str, Any]], line: int, external_id: str) -> dict[str, Any]:
    return {"id": external_id, **{k: medqa[line][k] for k in ("question", "options", "answer_idx")}}


def found(engine: Engine, pid: int, row: dict[str, Any]) -> list[tuple[str, int, float, str]]:
    """find_matches of a row's text, twice: with the signatures kept in memory, and read afresh; both must agree."""
    with read_session(engine) as session:
        kept = duplicates.find_matches(
            session, project_id=pid, kind="mcq", conversation=[], question=row["question"], options=row["options"]
        )
    assert signatures_store.kept_signatures()
    signatures_store.forget_signatures()
    with read_session(engine) as session:
        fresh = duplicates.find_matches(
            session, project_id=pid, kind="mcq", conversation=[], question=row["question"], options=row["options"]
        )
    assert kept == fresh
    return [(m.external_id, m.item_id, m.similarity, m.scope) for m in kept]


def edit_question(engine: Engine, item: int, row: dict[str, Any], actor_id: int) -> editing.SaveResult:
    """Save an item with another question and options in the editor's way (saved, then signed and checked)."""
    with write_session(engine) as session:
        draft = editing.draft_of(session, item_id=item)
        draft.question, draft.options = row["question"], sorted(row["options"].items())
        draft.answer_key = row["answer_idx"]
        saved = editing.save_item(session, draft, actor_id=actor_id, role="curator")
    return saved


def sign(engine: Engine, item: int) -> None:
    with write_session(engine) as session:
        duplicates.check_items(session, item_ids=[item])


def changes_are_seen_at_once(engine: Engine, medqa: list[dict[str, Any]], curator: int) -> None:
    """Import, edit in place, new version and retirement of an item, each followed by find_matches with the
    signatures kept in memory since the step before, compared with a fresh read."""
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in (50, 51, 52)])
    pid = project_id(engine, "P")
    first, second, third = (near_copy_mcq(medqa[n], "query") for n in (60, 61, 62))
    assert found(engine, pid, first) == []
    run_import(engine, "P", [mcq_row(medqa, 60, "new")])  # a signature added
    new_id = item_id(engine, "P", "new")
    [(external_id, matched, similarity, scope)] = found(engine, pid, first)
    assert (external_id, matched, scope) == ("new", new_id, "project") and 0.7 <= similarity < 1
    saved = edit_question(engine, new_id, mcq_row(medqa, 61, "new"), curator)
    assert (saved.outcome, saved.item_id) == ("edited", new_id)
    assert [m[0] for m in found(engine, pid, first)] == ["new"]  # saved, not yet signed again
    sign(engine, new_id)  # its signature replaced
    assert found(engine, pid, first) == []
    assert [m[:2] for m in found(engine, pid, second)] == [("new", new_id)]
    run_import(engine, "P", [mcq_row(medqa, 62, "new")], on_conflict="new-version")
    version_2 = item_id(engine, "P", "new")
    assert version_2 != new_id
    assert found(engine, pid, second) == []
    assert [m[:2] for m in found(engine, pid, third)] == [("new", version_2)]
    with write_session(engine) as session:
        workflow.change_status(session, item_ids=[version_2], to="retired", actor_id=curator, role="curator")
    assert found(engine, pid, third) == []
    with write_session(engine) as session:
        workflow.change_status(session, item_ids=[version_2], to="draft", actor_id=curator, role="curator")
    assert [m[:2] for m in found(engine, pid, third)] == [("new", version_2)]


def test_find_matches_sees_an_import_an_edit_a_new_version_and_a_retirement_at_once(engine, shared_data, people):
    """Test that find_matches with the signatures kept in memory finds what a fresh read finds right after an
    item is imported, edited in place (before and after it is signed again), given a new version, retired and
    reinstated."""
    signatures_store.forget_signatures()
    changes_are_seen_at_once(engine, shared_rows(shared_data, MEDQA), people["curator"])


def test_only_the_rows_added_or_replaced_are_read_again(engine, shared_data, people, monkeypatch):
    """Test that after an item is added or edited in place only its signature row is read from the database,
    and after a change behind replace_signatures' back (rows deleted) every row is."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in range(20)])
    pid = project_id(engine, "P")
    read: list[int] = []
    real_read = signatures_store._read_rows

    def counting(session: Any, query: Any) -> Any:
        rows = real_read(session, query)
        read.append(int(rows[0].size))
        return rows

    monkeypatch.setattr(signatures_store, "_read_rows", counting)
    signatures_store.forget_signatures()
    query = near_copy_mcq(medqa[5], "query")
    assert [m[0] for m in found(engine, pid, query)] == ["item-5"]
    read.clear()
    assert [m[0] for m in found(engine, pid, query)] == ["item-5"]
    assert read == [20]  # the fresh read only
    run_import(engine, "P", [mcq_row(medqa, 40, "added")])
    read.clear()
    assert [m[0] for m in found(engine, pid, query)] == ["item-5"]
    assert read[0] == 1  # the kept read: the added row alone
    edited = item_id(engine, "P", "item-5")
    edit_question(engine, edited, mcq_row(medqa, 41, "item-5"), people["curator"])
    sign(engine, edited)
    read.clear()
    assert found(engine, pid, query) == []
    assert read[:2] == [0, 1]  # nothing above the highest id; the edited item's row
    with write_session(engine) as session:
        session.exec(ItemSignature.__table__.delete().where(ItemSignature.item_id == edited))  # type: ignore[attr-defined]
    read.clear()
    assert found(engine, pid, near_copy_mcq(medqa[41], "query")) == []
    assert read[:2] == [0, 20]  # nothing above the highest id, then every row
    with write_session(engine) as session:
        scan = duplicates.scan_project(session, project_id=pid)  # signs it again: a row added below the highest
    assert scan.signed == 1
    assert [m[0] for m in found(engine, pid, near_copy_mcq(medqa[41], "query"))] == ["item-5"]


def test_a_changed_signature_is_recorded_as_a_replace_event_naming_its_items(engine, shared_data, people):
    """Test that replacing a signature by another records one "replace" audit event of the project's signatures
    naming the item, and that signing an item again with the same text records none."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in (1, 2)])
    pid, edited = project_id(engine, "P"), item_id(engine, "P", "item-1")

    def replace_events() -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
        with read_session(engine) as session:
            events = session.exec(select(AuditEvent).where(AuditEvent.entity == "item_signatures")).all()
            return [(e.action, e.entity_id, e.project_id, e.detail) for e in events]

    sign(engine, edited)
    assert replace_events() == []
    edit_question(engine, edited, mcq_row(medqa, 3, "item-1"), people["curator"])
    sign(engine, edited)
    sign(engine, edited)
    assert replace_events() == [("replace", pid, pid, {"item_ids": [edited]})]


def test_a_replacement_seen_after_a_newer_one_is_still_read_again(engine, shared_data, people):
    """Test that a "replace" event that becomes visible after a newer one (as when writers commit in parallel on
    PostgreSQL) still has its item's signature read again."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in (1, 2)])
    pid, first, second = project_id(engine, "P"), item_id(engine, "P", "item-1"), item_id(engine, "P", "item-2")
    edit_question(engine, first, mcq_row(medqa, 3, "item-1"), people["curator"])
    sign(engine, first)
    assert [m[0] for m in found(engine, pid, near_copy_mcq(medqa[2], "query"))] == ["item-2"]
    other = similarity.signature(similarity.item_text("mcq", [], medqa[9]["question"], medqa[9]["options"]))
    with write_session(engine) as session:
        older = session.exec(select(AuditEvent).where(AuditEvent.entity != "item_signatures")).first()
        assert older is not None and older.id is not None
        session.delete(older)  # its id, below the newest replace event's, is given to a late one
        session.flush()
        session.exec(
            ItemSignature.__table__.update()  # type: ignore[attr-defined]
            .where(ItemSignature.item_id == second)
            .values(signature=other[0], shingles=other[1])
        )
        session.add(
            AuditEvent(
                id=older.id, action="replace", entity="item_signatures", entity_id=pid, project_id=pid,
                detail={"item_ids": [second]},
            )
        )  # fmt: skip
    assert found(engine, pid, near_copy_mcq(medqa[2], "query")) == []
    assert [m[0] for m in found(engine, pid, near_copy_mcq(medqa[9], "query"))] == ["item-2"]


def test_signatures_written_in_a_transaction_that_is_rolled_back_are_never_kept(engine, shared_data):
    """Test that a read inside a transaction that replaced a signature is not kept, so after a rollback the
    stored signature is compared again."""
    medqa = shared_rows(shared_data, MEDQA)
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in (1, 2)])
    pid, stored = project_id(engine, "P"), item_id(engine, "P", "item-1")
    query = near_copy_mcq(medqa[1], "query")
    assert [m[0] for m in found(engine, pid, query)] == ["item-1"]
    other = similarity.signature(similarity.item_text("mcq", [], medqa[7]["question"], medqa[7]["options"]))
    with write_session(engine) as session:
        signatures_store.replace_signatures(
            session=session,
            rows=[{"item_id": stored, "project_id": pid, "signature": other[0], "shingles": other[1]}],
        )
        inside = duplicates.find_matches(
            session, project_id=pid, kind="mcq", conversation=[], question=query["question"], options=query["options"]
        )
        assert inside == []
        session.rollback()
    assert [m[0] for m in found(engine, pid, query)] == ["item-1"]


def test_two_databases_never_share_kept_signatures(engine, shared_data, tmp_path):
    """Test that two databases with the same project ids and row counts each find their own items."""
    medqa = shared_rows(shared_data, MEDQA)
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        prepare_database(other)
        run_import(engine, "P", [mcq_row(medqa, 10, "here")])
        run_import(other, "P", [mcq_row(medqa, 11, "there")])
        assert project_id(engine, "P") == project_id(other, "P")
        for database, line, expected in ((engine, 10, "here"), (other, 11, "there"), (engine, 11, None)):
            query = near_copy_mcq(medqa[line], "query")
            with read_session(database) as session:
                matches = duplicates.find_matches(
                    session, project_id=project_id(database, "P"), kind="mcq", conversation=[],
                    question=query["question"], options=query["options"],
                )  # fmt: skip
            assert [m.external_id for m in matches] == ([expected] if expected else [])
    finally:
        other.dispose()


def test_kept_signatures_stay_within_their_bound_least_recently_used_forgotten(engine, shared_data, monkeypatch):
    """Test that the signatures kept in memory stay within CACHE_BYTES, the least recently read project
    forgotten first, and a project larger than the bound is read but not kept."""
    medqa = shared_rows(shared_data, MEDQA)
    for name, lines in (("A", range(0, 10)), ("B", range(10, 20)), ("C", range(20, 50))):
        run_import(engine, name, [mcq_row(medqa, n, f"{name}-{n}") for n in lines])
    a, b, c = (project_id(engine, name) for name in "ABC")
    ten = 10 * (signatures_store.SIGNATURE_BYTES + 8 + 8)  # ten rows: signatures, ids with text, all ids
    monkeypatch.setattr(signatures_store, "CACHE_BYTES", 2 * ten)
    signatures_store.forget_signatures()

    def read(pid: int) -> int:
        with read_session(engine) as session:
            return len(signatures_store.project_signatures(session=session, project_ids=[pid])[0])

    assert (read(a), read(b)) == (10, 10)
    assert signatures_store.kept_signatures() == [(a, ten), (b, ten)]
    assert read(a) == 10
    assert signatures_store.kept_signatures() == [(b, ten), (a, ten)]
    assert read(c) == 30  # too large to keep
    assert signatures_store.kept_signatures() == [(b, ten), (a, ten)]
    run_import(engine, "D", [mcq_row(medqa, n, f"D-{n}") for n in range(50, 60)])
    d = project_id(engine, "D")
    assert read(d) == 10
    assert signatures_store.kept_signatures() == [(a, ten), (d, ten)]  # B, the least recently read, forgotten


def test_kept_signatures_equal_a_fresh_read_through_a_random_run_of_changes(engine, shared_data, people):
    """Test that through 40 random imports, edits in place (of open items, some to a text too short to compare
    and back), new versions, retirements and reinstatements, the signatures kept in memory equal a fresh read
    after each, and so do the matches found."""
    medqa, hard = shared_rows(shared_data, MEDQA), shared_rows(shared_data, HARD_30)
    rng = random.Random(3)
    run_import(engine, "P", [mcq_row(medqa, n, f"item-{n}") for n in range(6)])
    run_import(engine, "P", [{**row, "prompt_id": f"open-{n}"} for n, row in enumerate(hard[:4])])
    pid, curator = project_id(engine, "P"), people["curator"]
    mcq_ids, open_ids, used = [f"item-{n}" for n in range(6)], [f"open-{n}" for n in range(4)], list(range(6))
    done: list[str] = []
    short: set[str] = set()
    regained = 0

    def fresh_line() -> int:
        used.append(100 + len(used))
        return used[-1]

    signatures_store.forget_signatures()
    for step in range(40):
        action = rng.choice(["import", "edit", "short", "version", "retire", "reinstate"])
        chosen = rng.choice(mcq_ids + open_ids)
        if action in ("edit", "short"):  # an open item; often one made too short before, to give it text again
            chosen = rng.choice(sorted(short) if short and rng.random() < 0.6 else open_ids)
        current = item_id(engine, "P", chosen)
        retired = version_of(engine, current)[1] == "retired"
        if action == "import":
            added = [f"added-{step}-{n}" for n in range(rng.randint(1, 3))]
            run_import(engine, "P", [mcq_row(medqa, fresh_line(), external_id) for external_id in added])
            mcq_ids += added
        elif action in ("edit", "short") and not retired:
            with write_session(engine) as session:
                draft = editing.draft_of(session, item_id=current)
                text = "Help" if action == "short" else hard[rng.randrange(4, len(hard))]["prompt"][-1]["content"]
                draft.conversation = [editing.Turn("user", text)]
                saved = editing.save_item(session, draft, actor_id=curator, role="curator")
            if saved.outcome == "unchanged":
                continue
            assert saved.outcome == "edited"
            sign(engine, current)
            regained += action == "edit" and chosen in short
            (short.add if action == "short" else short.discard)(chosen)
        elif action == "version" and chosen in mcq_ids:
            run_import(engine, "P", [mcq_row(medqa, fresh_line(), chosen)], on_conflict="new-version")
        elif action in ("retire", "reinstate") and retired == (action == "reinstate"):
            with write_session(engine) as session:
                to = "retired" if action == "retire" else "draft"
                workflow.change_status(session, item_ids=[current], to=to, actor_id=curator, role="curator")
        else:
            continue
        done.append(action)
        with read_session(engine) as session:
            [kept] = signatures_store.project_signatures(session=session, project_ids=[pid])
        found(engine, pid, near_copy_mcq(medqa[rng.choice(used)], "probe"))  # kept, then read afresh
        with read_session(engine) as session:
            [fresh] = signatures_store.project_signatures(session=session, project_ids=[pid])
        assert np.array_equal(kept.item_ids, fresh.item_ids), (step, action)
        assert np.array_equal(kept.matrix, fresh.matrix), (step, action)
    assert {action: done.count(action) >= 3 for action in ("import", "edit", "short", "version", "retire")} == {
        "import": True, "edit": True, "short": True, "version": True, "retire": True
    }  # fmt: skip
    assert regained >= 2  # items given text again after being too short


def version_of(engine: Engine, item: int) -> tuple[int, str]:
    with read_session(engine) as session:
        return editing.version_of(session, item_id=item)


# --- PostgreSQL --------------------------------------------------------------------------------------------------


def test_postgres_flags_copies_of_a_reference_set(pg_engine, shared_data):
    """Test that on PostgreSQL (bytea signatures, JSON read by the driver) a copy of a reference item is flagged
    and found by the editor's check."""
    hard = shared_rows(shared_data, HARD_30)
    long_row = next(row for row in hard if len(row["prompt"][-1]["content"].split()) >= 80)
    run_import(pg_engine, "Public", hard)
    with write_session(pg_engine) as session:
        public = projects.get_project_by_name(session=session, name="Public")
        assert public is not None and public.id is not None
        duplicates.set_reference(session, project_id=public.id, is_reference=True, actor_id=None)
    report = run_import(pg_engine, "Internal", [near_copy_open(long_row, "copy")])
    assert [(d["external_id"], d["match_external_id"], d["scope"]) for d in report.duplicates] == [
        ("copy", long_row["prompt_id"], "reference")
    ]
    with read_session(pg_engine) as session:
        internal = projects.get_project_by_name(session=session, name="Internal")
        assert internal is not None and internal.id is not None
        matches = duplicates.find_matches(
            session, project_id=internal.id, kind="open", conversation=long_row["prompt"], question=None, options={}
        )
        assert [(m.external_id, m.similarity) for m in matches][0] == (long_row["prompt_id"], 1.0)
        [row] = duplicates.project_flags(session, project_id=internal.id)
        assert (row.item_external_id, row.match_project, row.scope) == ("copy", "Public", "reference")


def test_postgres_sees_every_change_with_signatures_kept_in_memory(pg_engine, shared_data):
    """Test that on PostgreSQL (signatures fetched row by row) find_matches with the signatures kept in memory
    finds what a fresh read finds after an import, an edit in place, a new version and a retirement."""
    with write_session(pg_engine) as session:
        curator = accounts.create_user(session, username="cur", role="curator", password=PASSWORD).user_id
    signatures_store.forget_signatures()
    changes_are_seen_at_once(pg_engine, shared_rows(shared_data, MEDQA), curator)

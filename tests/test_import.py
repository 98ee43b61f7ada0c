"""Import use cases on a real, fresh, migrated SQLite database per test.

Every test reads back what was stored (sqlmodel selects on storage.models, storage.items).
The bad-input corpus comes from test_formats.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select
from test_formats import (
    BAD_CASES,
    CONSENSUS_104,
    CONVERSATION,
    HARD_30,
    MEDQA_5,
    MEDQA_HARD,
    BadCase,
    build_csv,
    check_problems,
    jsonl,
    raw_lines,
    source_rows,
    valid_csv_rows,
)

from review.formats import InvalidInput, medqa_external_id, tag_value
from review.importing import ImportConflict, ImportReport, import_answers, import_items
from storage import items, projects
from storage.db import read_session, write_session
from storage.models import Answer, AuditEvent, Criterion, ImportBatch, Item, Model, Project, User

TABLES = {
    "project": Project,
    "item": Item,
    "criterion": Criterion,
    "answer": Answer,
    "importbatch": ImportBatch,
    "auditevent": AuditEvent,
    "model": Model,
}
# prompt_id -> line in the consensus file, for the three prompts that are also in hard_30
SHARED_IDS = {
    "6f827e79-05c4-4383-8ed4-16d36260f29f": 55,
    "06902be5-32f0-4adc-ba00-e5ad2f98ea2d": 67,
    "d7fd5cb8-7f2f-4678-ba41-2361e2ab3a40": 89,
}
ITEM_FIELDS = (
    "external_id",
    "kind",
    "version",
    "is_current",
    "status",
    "specialties",
    "dimension",
    "tags",
    "content_hash",
    "conversation",
    "question",
    "options",
    "answer_key",
    "explanation",
    "meta_info",
    "extra",
    "source_format",
)


# --- helpers ------------------------------------------------------------------------------------


def run_import(engine: Engine, project: str, data: bytes, filename: str, **kwargs: Any) -> ImportReport:
    with write_session(engine) as session:
        return import_items(session, project_name=project, data=data, filename=filename, **kwargs)


def import_file(engine: Engine, shared_data: Path, name: str, project: str, **kwargs: Any) -> ImportReport:
    path = shared_data / name
    return run_import(engine, project, path.read_bytes(), path.name, **kwargs)


def table_counts(engine: Engine) -> dict[str, int]:
    with read_session(engine) as session:
        return {name: session.exec(select(func.count()).select_from(table)).one() for name, table in TABLES.items()}


def project_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        project = projects.get_project_by_name(session=session, name=name)
        assert project is not None and project.id is not None
        return project.id


def stored_items(engine: Engine, project: str, *, current_only: bool = False) -> list[Item]:
    pid = project_id(engine, project)
    with read_session(engine) as session:
        query = select(Item).where(Item.project_id == pid).order_by(col(Item.id))
        if current_only:
            query = query.where(Item.is_current == True)  # noqa: E712
        return list(session.exec(query).all())


def stored_criteria(engine: Engine, item_ids: list[int]) -> dict[int, list[Criterion]]:
    """The criteria of each item, in position order."""
    with read_session(engine) as session:
        rows = session.exec(
            select(Criterion).where(col(Criterion.item_id).in_(item_ids)).order_by(col(Criterion.position))
        ).all()
    result: dict[int, list[Criterion]] = {item_id: [] for item_id in item_ids}
    for criterion in rows:
        result[criterion.item_id].append(criterion)
    return result


def answers_of(engine: Engine, project: str) -> list[tuple[Answer, str, str]]:
    """Every answer to any version of the project's items, with model name and item external id."""
    pid = project_id(engine, project)
    with read_session(engine) as session:
        query = (
            select(Answer, Model.name, Item.external_id)
            .join(Model, col(Model.id) == Answer.model_id)
            .join(Item, col(Item.id) == Answer.item_id)
            .where(Item.project_id == pid)
            .order_by(col(Answer.id))
        )
        return [(answer, model, external_id) for answer, model, external_id in session.exec(query).all()]


def rubric(row: dict[str, Any]) -> list[tuple[str, int, list[str]]]:
    return [(r["criterion"], r["points"], r["tags"]) for r in row["rubrics"]]


def stored_rubric(criteria: list[Criterion]) -> list[tuple[str, int, list[str]]]:
    return [(c.text, c.points, c.tags) for c in criteria]


def snapshot(engine: Engine, project: str) -> list[dict[str, Any]]:
    """Everything stored for a project's items, without ids, times and batch numbers."""
    stored = stored_items(engine, project)
    criteria = stored_criteria(engine, [item.id for item in stored])
    answers: dict[str, list[tuple[str, str, str, int | None, str]]] = {}
    for answer, model, external_id in answers_of(engine, project):
        answers.setdefault(external_id, []).append(
            (model, answer.text, answer.source, answer.slot, answer.content_hash)
        )
    return sorted(
        (
            {
                **{name: getattr(item, name) for name in ITEM_FIELDS},
                "criteria": [
                    (c.position, c.text, c.points, c.tags, c.axis, c.flagged, c.generated, c.accepted)
                    for c in criteria[item.id]
                ],
                "answers": sorted(answers.get(item.external_id, [])),
            }
            for item in stored
        ),
        key=lambda entry: (entry["external_id"], entry["version"]),
    )


# --- every row of the shared data ----------------------------------------------------------------


def test_all_shared_data_is_stored_in_four_projects(engine, shared_data):
    """Test that the four shared files in four projects store 1,373 MCQ items and 134 prompts with 563 criteria."""
    plan = {MEDQA_5: "MedQA", MEDQA_HARD: "MedQA hard", HARD_30: "HealthBench hard", CONSENSUS_104: "Consensus"}
    reports = {name: import_file(engine, shared_data, name, project) for name, project in plan.items()}
    assert [r.items_added for r in reports.values()] == [1273, 100, 30, 104]
    assert [r.criteria_added for r in reports.values()] == [0, 0, 355, 208]
    assert [r.format for r in reports.values()] == ["medqa", "medqa", "healthbench", "healthbench"]
    with read_session(engine) as session:
        counts = {
            project: items.project_counts(session=session, project_id=project_id(engine, project))
            for project in plan.values()
        }
        negative = session.exec(select(func.count()).select_from(Criterion).where(Criterion.points < 0)).one()
    assert counts["MedQA"]["items_by_kind"] == {"mcq": 1273}
    assert counts["MedQA hard"]["items_by_kind"] == {"mcq": 100}
    assert counts["HealthBench hard"]["items_by_kind"] == {"open": 30}
    assert counts["Consensus"]["items_by_kind"] == {"open": 104}
    assert counts["HealthBench hard"]["criteria"] + counts["Consensus"]["criteria"] == 563
    assert negative == 120
    assert table_counts(engine) == {
        "project": 4,
        "item": 1273 + 100 + 134,
        "criterion": 563,
        "answer": 0,
        "importbatch": 4,
        "auditevent": 4 + 4,  # one "create project" and one "import" per file
        "model": 0,
    }


@pytest.mark.parametrize(("name", "count", "n_options"), [(MEDQA_5, 1273, 5), (MEDQA_HARD, 100, 4)])
def test_medqa_rows_are_stored_with_options_and_keys(engine, shared_data, name, count, n_options):
    """Test that every MedQA row is stored as an mcq item with its question, options, answer key and meta_info."""
    report = import_file(engine, shared_data, name, "MedQA", status="approved")
    assert report.items_added == count and report.criteria_added == 0
    stored = {item.external_id: item for item in stored_items(engine, "MedQA")}
    assert len(stored) == count
    extra_keys = set() if n_options == 5 else {"realidx", "metamap_phrases"}
    for row in source_rows(shared_data, name):
        item = stored[medqa_external_id(row["question"])]
        assert item.kind == "mcq" and item.source_format == "medqa"
        assert item.status == "approved" and item.version == 1 and item.is_current
        assert item.question == row["question"]
        assert item.options == row["options"] and len(item.options) == n_options
        assert item.answer_key == row["answer_idx"]
        assert item.options[item.answer_key] == row["answer"]
        assert item.meta_info == row["meta_info"]
        assert item.conversation == []
        assert item.extra == {key: row[key] for key in extra_keys}
        assert item.import_batch_id == report.batch_id
    assert Counter(item.answer_key for item in stored.values()) == Counter(
        row["answer_idx"] for row in source_rows(shared_data, name)
    )
    assert table_counts(engine)["criterion"] == 0


def test_hard_30_rows_are_stored_intact(engine, shared_data):
    """Test that hard_30 stores 30 items, 355 criteria (120 negative), 18 multi-turn prompts and cluster tags intact."""
    report = import_file(engine, shared_data, HARD_30, "HealthBench hard")
    assert (report.items_added, report.criteria_added, report.answers_added) == (30, 355, 0)
    stored = {item.external_id: item for item in stored_items(engine, "HealthBench hard")}
    criteria = stored_criteria(engine, [item.id for item in stored.values()])
    rows = source_rows(shared_data, HARD_30)
    assert sorted(stored) == sorted(row["prompt_id"] for row in rows)
    for row in rows:
        item = stored[row["prompt_id"]]
        assert item.kind == "open" and item.source_format == "healthbench" and item.status == "draft"
        assert item.version == 1 and item.is_current and item.previous_version_id is None
        assert item.conversation == row["prompt"]
        assert item.tags == row["example_tags"]
        assert item.extra == {"canary": row["canary"], "ideal_completions_data": row["ideal_completions_data"]}
        rubric_rows = criteria[item.id]
        assert [c.position for c in rubric_rows] == list(range(len(row["rubrics"])))
        assert stored_rubric(rubric_rows) == rubric(row)
        assert all(c.axis == tag_value(c.tags, "axis") for c in rubric_rows)
    every = [c for rubric_rows in criteria.values() for c in rubric_rows]
    assert len(every) == 355
    assert sum(1 for c in every if c.points < 0) == 120
    multi = [item for item in stored.values() if len(item.conversation) > 1]
    assert len(multi) == 18
    assert Counter(m["role"] for item in stored.values() for m in item.conversation) == {"user": 72, "assistant": 42}
    cluster = [c for c in every if "level:cluster" in c.tags]
    assert len(cluster) == 41
    assert all(tag_value(c.tags, "cluster") and c.axis for c in cluster)
    with read_session(engine) as session:
        batch = session.get(ImportBatch, report.batch_id)
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "import")).one()
    assert batch is not None and batch.filename == "hard_sample_30.jsonl" and batch.format == "healthbench"
    assert batch.counts["items_added"] == 30 and batch.counts["criteria_added"] == 355
    assert event.entity == "import_batch" and event.entity_id == report.batch_id
    assert event.detail["items_added"] == 30


def test_consensus_104_is_stored_in_its_own_project(engine, shared_data):
    """Test that the consensus file stores 104 items with 208 +5 cluster criteria and 53 intact multi-turn prompts."""
    import_file(engine, shared_data, HARD_30, "HealthBench hard")
    report = import_file(engine, shared_data, CONSENSUS_104, "Consensus")
    assert (report.items_added, report.criteria_added, report.conflicts) == (104, 208, [])
    stored = {item.external_id: item for item in stored_items(engine, "Consensus")}
    criteria = stored_criteria(engine, [item.id for item in stored.values()])
    rows = source_rows(shared_data, CONSENSUS_104)
    assert len(stored) == 104
    for row in rows:
        item = stored[row["prompt_id"]]
        assert item.conversation == row["prompt"]
        assert stored_rubric(criteria[item.id]) == rubric(row)
    every = [c for rubric_rows in criteria.values() for c in rubric_rows]
    assert len(every) == 208
    assert {c.points for c in every} == {5}
    assert all("level:cluster" in c.tags and tag_value(c.tags, "cluster") for c in every)
    assert sum(1 for item in stored.values() if len(item.conversation) > 1) == 53
    # the three shared prompt ids live on, unchanged, in the other project
    hard = {item.external_id: item for item in stored_items(engine, "HealthBench hard")}
    assert all(hard[pid].version == 1 and hard[pid].is_current for pid in SHARED_IDS)
    counts = table_counts(engine)
    assert (counts["item"], counts["criterion"]) == (134, 563)


# --- re-import -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (MEDQA_5, {}),
        (MEDQA_HARD, {}),
        (HARD_30, {}),
        (HARD_30, {"with_reference_answers": True}),
        (CONSENSUS_104, {"with_reference_answers": True}),
    ],
    ids=["medqa-5", "medqa-hard", "hard-30", "hard-30-with-answers", "consensus-with-answers"],
)
def test_reimport_adds_nothing(engine, shared_data, name, kwargs):
    """Test that importing the same file twice adds 0 items, 0 criteria and 0 answers the second time."""
    first = import_file(engine, shared_data, name, "Again", **kwargs)
    before = table_counts(engine)
    snap = snapshot(engine, "Again")
    second = import_file(engine, shared_data, name, "Again", **kwargs)
    assert (second.items_added, second.items_new_version, second.items_skipped) == (0, 0, 0)
    assert (second.criteria_added, second.answers_added) == (0, 0)
    assert second.items_unchanged == first.items_added
    assert second.answers_unchanged == first.answers_added
    assert second.conflicts == []
    after = table_counts(engine)
    for table in ("project", "item", "criterion", "answer", "model"):
        assert after[table] == before[table], table
    assert snapshot(engine, "Again") == snap
    with read_session(engine) as session:
        in_second = session.exec(select(func.count()).select_from(Item).where(Item.import_batch_id == second.batch_id))
        assert in_second.one() == 0


# --- conflicts between the two HealthBench files ----------------------------------------------------


def test_the_two_healthbench_files_share_exactly_three_prompts(shared_data):
    """Test that the shared data has exactly the three shared prompt ids, at the expected consensus lines."""
    hard = {row["prompt_id"] for row in source_rows(shared_data, HARD_30)}
    consensus = [row["prompt_id"] for row in source_rows(shared_data, CONSENSUS_104)]
    assert hard & set(consensus) == set(SHARED_IDS)
    assert {pid: consensus.index(pid) + 1 for pid in SHARED_IDS} == SHARED_IDS


def test_conflicting_import_raises_and_writes_nothing(engine, shared_data):
    """Test that importing consensus over hard_30 raises ImportConflict naming the 3 ids and lines, writing nothing."""
    import_file(engine, shared_data, HARD_30, "HealthBench")
    before = table_counts(engine)
    snap = snapshot(engine, "HealthBench")
    with pytest.raises(ImportConflict) as caught:
        import_file(engine, shared_data, CONSENSUS_104, "HealthBench")
    problems = caught.value.problems
    named = {pid: p.line for p in problems for pid in SHARED_IDS if pid in p.message}
    assert named == SHARED_IDS
    assert len(problems) == 3
    assert all(p.filename == "context_seeking_consensus_hard_104.jsonl" for p in problems)
    for pid, line in SHARED_IDS.items():
        assert f"context_seeking_consensus_hard_104.jsonl, line {line}" in str(caught.value)
        assert pid in str(caught.value)
    assert table_counts(engine) == before
    assert snapshot(engine, "HealthBench") == snap


def test_conflicting_import_with_skip_imports_the_others(engine, shared_data):
    """Test that on_conflict="skip" imports the 101 other consensus prompts and leaves the 3 shared ones as they are."""
    import_file(engine, shared_data, HARD_30, "HealthBench")
    report = import_file(engine, shared_data, CONSENSUS_104, "HealthBench", on_conflict="skip")
    assert (report.items_added, report.items_skipped, report.items_new_version) == (101, 3, 0)
    assert sorted(report.conflicts) == sorted(SHARED_IDS)
    assert report.criteria_added == 208 - 3 * 2
    stored = stored_items(engine, "HealthBench")
    assert len(stored) == 131
    assert all(item.version == 1 and item.is_current for item in stored)
    counts = table_counts(engine)
    assert (counts["item"], counts["criterion"], counts["importbatch"]) == (131, 557, 2)
    hard_rows = {row["prompt_id"]: row for row in source_rows(shared_data, HARD_30)}
    by_id = {item.external_id: item for item in stored}
    criteria = stored_criteria(engine, [by_id[pid].id for pid in SHARED_IDS])
    for pid in SHARED_IDS:
        assert by_id[pid].import_batch_id != report.batch_id
        assert stored_rubric(criteria[by_id[pid].id]) == rubric(hard_rows[pid])
        assert len(criteria[by_id[pid].id]) in (11, 17, 18)


def test_conflicting_import_with_new_version_versions_the_three(engine, shared_data):
    """Test that on_conflict="new-version" makes the 3 shared prompts a version 2; version 1 keeps its rubric."""
    first = import_file(engine, shared_data, HARD_30, "HealthBench")
    report = import_file(engine, shared_data, CONSENSUS_104, "HealthBench", on_conflict="new-version")
    assert (report.items_added, report.items_new_version, report.items_skipped) == (101, 3, 0)
    assert sorted(report.conflicts) == sorted(SHARED_IDS)
    assert report.criteria_added == 208
    counts = table_counts(engine)
    assert (counts["item"], counts["criterion"]) == (134, 563)
    assert len(stored_items(engine, "HealthBench", current_only=True)) == 131
    hard_rows = {row["prompt_id"]: row for row in source_rows(shared_data, HARD_30)}
    consensus_rows = {row["prompt_id"]: row for row in source_rows(shared_data, CONSENSUS_104)}
    pid_of_project = project_id(engine, "HealthBench")
    with read_session(engine) as session:
        current = items.current_items_by_external_id(session=session, project_id=pid_of_project)
        project_counts = items.project_counts(session=session, project_id=pid_of_project)
        for pid in SHARED_IDS:
            old, new = items.list_item_versions(session=session, project_id=pid_of_project, external_id=pid)
            assert (old.version, old.is_current, old.import_batch_id) == (1, False, first.batch_id)
            assert (new.version, new.is_current, new.import_batch_id) == (2, True, report.batch_id)
            assert new.previous_version_id == old.id
            assert current[pid].item_id == new.id and current[pid].version == 2
            assert new.content_hash != old.content_hash
            assert stored_rubric(items.list_criteria(session=session, item_id=old.id)) == rubric(hard_rows[pid])
            assert stored_rubric(items.list_criteria(session=session, item_id=new.id)) == rubric(consensus_rows[pid])
    assert len(current) == 131
    assert project_counts["items"] == 131
    assert project_counts["criteria"] == 355 - sum(len(hard_rows[pid]["rubrics"]) for pid in SHARED_IDS) + 208
    # importing the consensus file again finds every row unchanged
    again = import_file(engine, shared_data, CONSENSUS_104, "HealthBench", on_conflict="new-version")
    assert (again.items_added, again.items_new_version, again.items_unchanged, again.criteria_added) == (0, 0, 104, 0)
    assert table_counts(engine)["item"] == 134


# --- reference answers ------------------------------------------------------------------------------


def test_reference_answers_are_imported_once(engine, shared_data):
    """Test that --with-reference-answers stores hard_30's 80 reference answers from healthbench-ref-1..4, once."""
    report = import_file(engine, shared_data, HARD_30, "HealthBench", with_reference_answers=True)
    assert (report.answers_added, report.answers_unchanged) == (80, 0)
    stored = answers_of(engine, "HealthBench")
    assert len(stored) == 80
    assert Counter(model for _, model, _ in stored) == {f"healthbench-ref-{slot}": 20 for slot in range(1, 5)}
    rows = {row["prompt_id"]: row for row in source_rows(shared_data, HARD_30)}
    for answer, model, external_id in stored:
        references = rows[external_id]["ideal_completions_data"]["ideal_completions_ref_completions"]
        assert answer.source == "reference"
        assert model == f"healthbench-ref-{answer.slot}"
        assert answer.text == references[answer.slot - 1]
    answered = Counter(external_id for _, _, external_id in stored)
    for pid, row in rows.items():
        references = (row.get("ideal_completions_data") or {}).get("ideal_completions_ref_completions") or []
        assert answered.get(pid, 0) == len(references)
    assert sum(1 for row in rows.values() if row["ideal_completions_data"] is None) == 3
    assert sum(1 for row in rows.values() if row["ideal_completions_data"] and not answered.get(row["prompt_id"])) == 7
    assert table_counts(engine)["model"] == 4

    again = import_file(engine, shared_data, HARD_30, "HealthBench", with_reference_answers=True)
    assert (again.answers_added, again.answers_unchanged) == (0, 80)
    assert table_counts(engine)["answer"] == 80
    assert table_counts(engine)["model"] == 4


def test_reference_answers_are_not_imported_by_default(engine, shared_data):
    """Test that without --with-reference-answers no answers and no models are stored."""
    report = import_file(engine, shared_data, HARD_30, "HealthBench")
    assert report.answers_added == 0
    counts = table_counts(engine)
    assert (counts["answer"], counts["model"]) == (0, 0)


# --- CSV ---------------------------------------------------------------------------------------------


def test_csv_import_stores_open_and_mcq_items(engine):
    """Test that a valid CSV stores its open items (rows as criteria, a multi-turn conversation) and its mcq item."""
    report = run_import(engine, "CSV", build_csv(valid_csv_rows()), "items.csv")
    assert (report.format, report.items_added, report.criteria_added) == ("csv", 3, 5)
    stored = {item.external_id: item for item in stored_items(engine, "CSV")}
    assert list(stored) == ["open-1", "open-2", "mcq-1"]
    criteria = stored_criteria(engine, [item.id for item in stored.values()])
    first, second, mcq = stored["open-1"], stored["open-2"], stored["mcq-1"]
    assert first.conversation == [{"role": "user", "content": "Can I take ibuprofen with lisinopril?"}]
    assert [(c.position, c.text, c.points, c.tags, c.axis) for c in criteria[first.id]] == [
        (0, "Mentions the risk of kidney injury", 7, ["axis:accuracy", "level:example"], "accuracy"),
        (1, "Advises asking a pharmacist or doctor", 4, [], None),
        (2, "Says the combination is always safe", -8, ["axis:accuracy"], "accuracy"),
    ]
    assert (first.specialties, first.dimension, first.tags) == (
        ["Cardiology", "Nephrology"],
        "safety-ethics",
        ["theme:hedging"],
    )
    assert second.conversation == CONVERSATION
    assert [(c.text, c.points) for c in criteria[second.id]] == [
        ("Tells the parent to seek emergency care now, since the infant is under 3 months", 10),
        ('Suggests waiting "a few days" to see if it passes', -10),
    ]
    assert criteria[second.id][0].tags == ["level:cluster", "cluster:emergency_referrals_emergent", "axis:completeness"]
    assert mcq.kind == "mcq" and criteria[mcq.id] == []
    assert mcq.options == {"A": "Diphenhydramine", "B": "Epinephrine", "C": "Prednisone", "D": "Salbutamol, inhaled"}
    assert (mcq.answer_key, mcq.explanation, mcq.meta_info) == ("B", "Intramuscular epinephrine.", "step2&3")
    assert (mcq.specialties, mcq.dimension) == (["Emergency Medicine"], "knowledge")
    assert all(item.source_format == "csv" and item.version == 1 for item in stored.values())


def test_csv_from_excel_with_bom_is_the_same_import(engine):
    """Test that the same CSV saved with a UTF-8 BOM and CRLF imports, and matches the plain CSV's items exactly."""
    excel = run_import(engine, "Excel", build_csv(valid_csv_rows(), bom=True, newline="\r\n"), "excel.csv")
    assert (excel.items_added, excel.criteria_added) == (3, 5)
    stored = {item.external_id: item for item in stored_items(engine, "Excel")}
    assert stored["open-2"].conversation == CONVERSATION
    assert stored["open-1"].conversation[0]["content"] == "Can I take ibuprofen with lisinopril?"
    plain = run_import(engine, "Excel", build_csv(valid_csv_rows()), "plain.csv")
    assert (plain.items_added, plain.items_unchanged, plain.criteria_added) == (0, 3, 0)
    assert table_counts(engine)["item"] == 3


def test_csv_missing_columns_is_rejected_and_writes_nothing(engine, shared_data):
    """Test that a CSV without the external_id and kind columns names them on line 1 and writes nothing."""
    import_file(engine, shared_data, HARD_30, "HealthBench")
    before = table_counts(engine)
    data = build_csv([["id", "prompt", "criterion", "points"], ["a", "Hi", "Greets", "5"]])
    with pytest.raises(InvalidInput) as caught:
        run_import(engine, "HealthBench", data, "nocols.csv")
    assert "nocols.csv, line 1, field external_id, kind: required column(s) missing" in str(caught.value)
    assert table_counts(engine) == before


# --- bad input writes nothing ---------------------------------------------------------------------


@pytest.fixture
def existing_project(engine: Engine, shared_data: Path) -> str:
    """A database that already holds a project with items, criteria, answers, a batch and audit events."""
    run_import(
        engine, "Existing", jsonl(*raw_lines(shared_data, HARD_30)[:4]), "four.jsonl", with_reference_answers=True
    )
    counts = table_counts(engine)
    assert counts["item"] == 4 and counts["criterion"] > 0 and counts["answer"] > 0
    return "Existing"


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_bad_input_writes_nothing(engine, shared_data, existing_project, case: BadCase):
    """Test that importing each bad file raises InvalidInput with every problem located, and writes no row at all."""
    data = case.build(shared_data)
    before = table_counts(engine)
    snap = snapshot(engine, existing_project)
    for project in (existing_project, "A new project"):
        with pytest.raises(InvalidInput) as caught:
            run_import(
                engine,
                project,
                data,
                case.filename,
                fmt=case.fmt,
                max_bytes=case.max_bytes,
                with_reference_answers=True,
                on_conflict="new-version",
            )
        check_problems(caught.value, case)
        assert table_counts(engine) == before
    assert snapshot(engine, existing_project) == snap


# --- model answers ----------------------------------------------------------------------------------


def _answers_file(lines: list[dict[str, Any]]) -> bytes:
    return jsonl(*(json.dumps(line).encode() for line in lines))


@pytest.fixture
def versioned_project(engine: Engine, shared_data: Path) -> str:
    """hard_30 then consensus (new-version) in one project: 3 items have a current version 2."""
    import_file(engine, shared_data, HARD_30, "HealthBench")
    import_file(engine, shared_data, CONSENSUS_104, "HealthBench", on_conflict="new-version")
    return "HealthBench"


def test_answers_attach_to_current_versions(engine, shared_data, versioned_project):
    """Test that imported answers attach to the current version of each item and re-importing adds none."""
    shared = list(SHARED_IDS)
    hard_only = source_rows(shared_data, HARD_30)[0]["prompt_id"]
    consensus_only = source_rows(shared_data, CONSENSUS_104)[0]["prompt_id"]
    lines = [
        {"external_id": shared[0], "model": "gpt-4.1", "answer": "See a doctor today."},
        {"external_id": shared[1], "model": "gpt-4.1", "answer": "How old are you?"},
        {"external_id": hard_only, "model": "llama-3", "answer": "Apply the cream twice daily."},
        {"external_id": consensus_only, "model": "llama-3", "answer": "Could you tell me more?"},
        {"external_id": shared[0], "model": "gpt-4.1", "answer": "See a doctor today."},
    ]
    data = _answers_file(lines)
    with write_session(engine) as session:
        report = import_answers(session, project_name=versioned_project, data=data, filename="answers.jsonl")
    assert (report.answers_added, report.answers_unchanged) == (4, 1)
    assert report.models == ["gpt-4.1", "llama-3"]
    pid = project_id(engine, versioned_project)
    with read_session(engine) as session:
        current = items.current_items_by_external_id(session=session, project_id=pid)
        item_versions = {item.id: item.version for item in stored_items(engine, versioned_project)}
    stored = answers_of(engine, versioned_project)
    assert sorted((model, external_id, a.text) for a, model, external_id in stored) == sorted(
        (line["model"], line["external_id"], line["answer"]) for line in lines[:4]
    )
    for answer, _, external_id in stored:
        assert answer.item_id == current[external_id].item_id
        assert answer.source == "import" and answer.slot is None
    assert [item_versions[a.item_id] for a, _, external_id in stored if external_id in SHARED_IDS] == [2, 2]

    before = table_counts(engine)
    with write_session(engine) as session:
        again = import_answers(session, project_name=versioned_project, data=data, filename="answers.jsonl")
    assert (again.answers_added, again.answers_unchanged) == (0, 5)
    after = table_counts(engine)
    assert (after["answer"], after["model"]) == (before["answer"], before["model"]) == (4, 2)


def test_answers_to_unknown_items_are_rejected_and_write_nothing(engine, shared_data, versioned_project):
    """Test that an answer naming an unknown external_id is rejected with its line and field, and nothing is written."""
    known = source_rows(shared_data, HARD_30)[1]["prompt_id"]
    data = _answers_file(
        [
            {"external_id": known, "model": "new-model", "answer": "Rest and fluids."},
            {"external_id": "no-such-prompt", "model": "new-model", "answer": "Rest and fluids."},
            {"external_id": known, "model": "other-model", "answer": "Rest."},
        ]
    )
    before = table_counts(engine)
    with pytest.raises(InvalidInput) as caught:
        with write_session(engine) as session:
            import_answers(session, project_name=versioned_project, data=data, filename="answers.jsonl")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "external_id")]
    assert "answers.jsonl, line 2, field external_id:" in str(caught.value)
    assert "no-such-prompt" in str(caught.value)
    assert table_counts(engine) == before


def test_answers_to_a_missing_project_are_rejected(engine, shared_data, versioned_project):
    """Test that importing answers into a project that does not exist raises InvalidInput and writes nothing."""
    known = source_rows(shared_data, HARD_30)[1]["prompt_id"]
    data = _answers_file([{"external_id": known, "model": "m", "answer": "a"}])
    before = table_counts(engine)
    with pytest.raises(InvalidInput, match="no project named 'Nope'"):
        with write_session(engine) as session:
            import_answers(session, project_name="Nope", data=data, filename="answers.jsonl")
    assert table_counts(engine) == before


# --- batching -----------------------------------------------------------------------------------


def test_small_batches_store_the_same_as_one_batch(engine, shared_data):
    """Test that importing hard_30 in batches of 7 items stores exactly what one batch stores."""
    one = import_file(engine, shared_data, HARD_30, "One batch", with_reference_answers=True)
    seven = import_file(engine, shared_data, HARD_30, "Batches of 7", with_reference_answers=True, batch_items=7)

    def counts(report: ImportReport) -> dict[str, Any]:
        return {k: v for k, v in report.as_dict().items() if k not in ("project", "batch_id", "seconds")}

    assert counts(seven) == counts(one)
    assert (seven.items_added, seven.criteria_added, seven.answers_added) == (30, 355, 80)
    one_snapshot = snapshot(engine, "One batch")
    assert len(one_snapshot) == 30
    assert snapshot(engine, "Batches of 7") == one_snapshot
    # rows keep the file's order within the project
    assert [item.external_id for item in stored_items(engine, "Batches of 7")] == [
        row["prompt_id"] for row in source_rows(shared_data, HARD_30)
    ]


def test_small_batches_with_new_versions_match_one_batch(engine, shared_data):
    """Test that a new-version import in batches of 7 stores the same versions and criteria as one batch."""
    for project, size in (("One batch", 500), ("Batches of 7", 7)):
        import_file(engine, shared_data, HARD_30, project, batch_items=size)
        report = import_file(engine, shared_data, CONSENSUS_104, project, on_conflict="new-version", batch_items=size)
        assert (report.items_added, report.items_new_version, report.criteria_added) == (101, 3, 208)
    assert snapshot(engine, "Batches of 7") == snapshot(engine, "One batch")


# --- re-importing an identical file -------------------------------------------------------------


def _batches(engine) -> list[ImportBatch]:
    with read_session(engine) as session:
        return list(session.exec(select(ImportBatch).order_by(ImportBatch.id)).all())


def test_identical_reimport_is_recognised_and_reports_the_same_counts(engine, shared_data):
    """Test that re-importing the same bytes skips parsing, adds nothing and reports what a full re-import would."""
    data = (shared_data / HARD_30).read_bytes()
    first = run_import(engine, "P", data, HARD_30, with_reference_answers=True)
    before = table_counts(engine)
    again = run_import(engine, "P", data, HARD_30, with_reference_answers=True)
    assert (again.items_added, again.items_unchanged, again.items_new_version) == (0, 30, 0)
    assert (again.criteria_added, again.answers_added, again.answers_unchanged) == (0, 0, first.answers_added)
    after = table_counts(engine)
    assert after["importbatch"] == before["importbatch"] + 1 and after["auditevent"] == before["auditevent"] + 1
    assert {k: v for k, v in after.items() if k not in ("importbatch", "auditevent")} == {
        k: v for k, v in before.items() if k not in ("importbatch", "auditevent")
    }
    assert _batches(engine)[-1].counts["identical_to_earlier_import"] is True


def test_same_rows_in_different_bytes_take_the_full_path_and_add_nothing(engine, shared_data):
    """Test that the same rows written differently (a trailing blank line) are parsed and found unchanged."""
    data = (shared_data / HARD_30).read_bytes()
    run_import(engine, "P", data, HARD_30)
    again = run_import(engine, "P", data + b"\n\n", HARD_30)
    assert (again.items_added, again.items_unchanged, again.criteria_added) == (0, 30, 0)
    assert "identical_to_earlier_import" not in _batches(engine)[-1].counts


def test_identical_file_is_parsed_again_once_the_project_changed(engine, shared_data):
    """Test that after another import changed the project, the identical file is checked row by row again."""
    hard = (shared_data / HARD_30).read_bytes()
    consensus = (shared_data / CONSENSUS_104).read_bytes()
    run_import(engine, "P", consensus, CONSENSUS_104)
    run_import(engine, "P", hard, HARD_30, on_conflict="new-version")  # the 3 shared prompts get version 2
    run_import(engine, "P", consensus, CONSENSUS_104, on_conflict="new-version")  # and version 3 from consensus
    with pytest.raises(ImportConflict) as caught:
        run_import(engine, "P", hard, HARD_30)  # same bytes as before, but 3 of its items are no longer current
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize("change", ["editor", "tags"])
def test_identical_file_is_parsed_again_once_an_item_was_edited_in_place(engine, shared_data, change):
    """Test that after an item was edited in place (in the editor, or its tags in bulk), re-importing the same
    bytes is checked row by row and names the edited item as a conflict instead of calling it unchanged."""
    from review import editing, workflow

    hard = (shared_data / HARD_30).read_bytes()
    run_import(engine, "P", hard, HARD_30)
    with write_session(engine) as session:
        curator = session.exec(select(User).where(User.username == "curator-x")).first()
        if curator is None:
            curator = User(username="curator-x", role="curator")
            session.add(curator)
            session.commit()
        item = session.exec(select(Item).where(Item.version == 1).order_by(Item.id)).first()
        assert item is not None and item.id is not None
        if change == "editor":
            draft = editing.draft_of(session, item_id=item.id)
            draft.criteria[0].text = draft.criteria[0].text + " (reworded)"
            assert editing.save_item(session, draft, actor_id=curator.id, role="curator").outcome == "edited"
        else:
            workflow.tag_items(
                session, item_ids=[item.id], add=["reviewed:cardiology"], remove=[], actor_id=curator.id, role="curator"
            )
        external_id = item.external_id
    with pytest.raises(ImportConflict) as caught:
        run_import(engine, "P", hard, HARD_30)
    assert [p.message for p in caught.value.problems] == [
        f"item {external_id!r} already exists in project 'P' with different content; use --on-conflict "
        "new-version or skip"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"on_conflict": "skip"}, {}),  # the first import skipped rows: a plain repeat must report them
        ({}, {"with_reference_answers": True}),  # answers were not imported the first time
        ({}, {"fmt": "medqa"}),  # another format than the file was read as
    ],
)
def test_repeat_is_not_assumed_when_options_differ(engine, shared_data, first, second):
    """Test that the shortcut is refused when the earlier import skipped rows or used other options."""
    hard = (shared_data / HARD_30).read_bytes()
    consensus = (shared_data / CONSENSUS_104).read_bytes()
    if first.get("on_conflict") == "skip":
        run_import(engine, "P", hard, HARD_30)
        data, name = consensus, CONSENSUS_104
    else:
        data, name = hard, HARD_30
    run_import(engine, "P", data, name, **first)
    if "fmt" in second:
        with pytest.raises(InvalidInput):
            run_import(engine, "P", data, name, **second)
        return
    if first.get("on_conflict") == "skip":
        with pytest.raises(ImportConflict):
            run_import(engine, "P", data, name, **second)
        return
    again = run_import(engine, "P", data, name, **second)
    assert again.answers_added == 80
    assert "identical_to_earlier_import" not in _batches(engine)[-1].counts


@pytest.mark.parametrize("earlier_import", [False, True])
def test_parsing_a_file_holds_no_write_lock(engine, shared_data, database_url, monkeypatch, earlier_import):
    """Test that while an import parses its file, another connection can write at once (no lock held)."""
    import sqlite3

    from review import importing as importing_module

    data = (shared_data / HARD_30).read_bytes()
    if earlier_import:
        run_import(engine, "P", (shared_data / MEDQA_HARD).read_bytes(), MEDQA_HARD)  # the project exists
    real_parse = importing_module.parse_items
    writes: list[str] = []

    def parse_while_someone_writes(*args: Any, **kwargs: Any) -> Any:
        other = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None, timeout=0)
        try:
            other.execute("PRAGMA busy_timeout=0")
            other.execute("BEGIN IMMEDIATE")  # fails at once with 'database is locked' if the import holds it
            other.execute("INSERT INTO specialty (name, position, active) VALUES ('Written meanwhile', 999, 1)")
            other.execute("COMMIT")
            writes.append("ok")
        finally:
            other.close()
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(importing_module, "parse_items", parse_while_someone_writes)
    report = run_import(engine, "P", data, HARD_30)
    assert writes == ["ok"]
    assert report.items_added == 30

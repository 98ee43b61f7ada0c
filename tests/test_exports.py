"""Exports on a real, fresh, migrated SQLite database per test: gold labels (JSONL, CSV, Parquet) of the demo
project after a physician's grading, imported raters' labels, automatic gold and one adjudication; HealthBench
items and meta-eval rows, each checked by a round trip through medreview's own importers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from review import adjudication, exports, grading
from review.importing import import_answers, import_items
from review.label_import import import_labels, import_meta_eval
from storage import items, projects
from storage.db import read_session, write_session
from storage.models import Annotation, CriterionLabel, User
from tests.test_label_import import completion_text, meta_rows, to_jsonl

HARD_30 = "healthbench/hard_sample_30.jsonl"
FORMULA = "=SUM(A1:A3) of paracetamol is how I would dose this."
RATIONALE = "@risk: the answer does say when to go to the emergency department."


@dataclass
class Graded:
    """The demo project after grading, labels, gold and one adjudication, with the ids the tests need."""

    project: str
    project_id: int
    graded: int  # the answer dr.okafor graded
    formula: int  # an imported answer whose text starts like a spreadsheet formula
    adjudicated: tuple[int, int]  # the unit the curator settled
    criteria: dict[int, list[Any]]  # answer id -> its item's criteria in position order
    external: dict[int, tuple[str, int]]  # answer id -> (item external id, item version)
    okafor: int
    ext1: int
    ext2: int


def project_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        project = projects.get_project_by_name(session=session, name=name)
        assert project is not None and project.id is not None
        return project.id


def user_id(engine: Engine, username: str) -> int:
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.id is not None
        return user.id


def item_of(engine: Engine, project: str, answer_id: int) -> tuple[str, int, list[Any]]:
    """(external id, version, criteria) of an answer's item."""
    with read_session(engine) as session:
        answer = items.get_answer(session=session, answer_id=answer_id)
        assert answer is not None
        item = items.get_item(session=session, item_id=answer.item_id)
        assert item is not None
        return item.external_id, item.version, items.list_criteria(session=session, item_id=answer.item_id)


def run_export(engine: Engine, kind: str, project: str, fmt: str = "jsonl", **options: Any) -> tuple[int, bytes]:
    out = io.BytesIO()
    with read_session(engine) as session:
        count = exports.export(session, kind=kind, project_name=project, out=out, fmt=fmt, **options)
    return count, out.getvalue()


def jsonl(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]


@pytest.fixture
def graded(engine: Engine, seeded_project: str) -> Graded:
    """dr.okafor grades one answer (all met, one comment); imported raters ext-1 and ext-2 label it and a formula
    answer; a judge labels too (never exported); automatic gold, and the curator settles one disputed unit."""
    pid = project_id(engine, seeded_project)
    okafor = user_id(engine, "dr.okafor")
    with write_session(engine) as session:
        import_answers(
            session,
            project_name=seeded_project,
            data=to_jsonl([{"external_id": "demo-open-03", "model": "model-formula", "answer": FORMULA}]),
            filename="formula.jsonl",
        )
    with read_session(engine) as session:
        current = items.current_items_by_external_id(session=session, project_id=pid)["demo-open-03"]
        [formula] = [
            a.id for a, model in items.list_answers(session=session, item_id=current.item_id) if a.text == FORMULA
        ]
        assert formula is not None

    with write_session(engine) as session:
        claim = grading.claim_next(session, project_id=pid, user_id=okafor)
    assert claim is not None
    graded_id = claim.answer_id
    _, _, graded_criteria = item_of(engine, seeded_project, graded_id)
    ids = [c.id for c in graded_criteria]
    with write_session(engine) as session:
        grading.submit_grading(
            session,
            assignment_id=claim.assignment_id,
            user_id=okafor,
            grading=grading.Grading(
                labels={i: "met" for i in ids}, comments={ids[0]: "Names the red flags."}, safety="none"
            ),
        )

    graded_external, _, _ = item_of(engine, seeded_project, graded_id)
    rows = [
        {
            "external_id": graded_external,
            "answer_id": graded_id,
            "criterion": position,
            "rater": "ext-1",
            "value": "not_met" if position == 1 else "met",
            **({"comment": "-- misses the threshold"} if position == 1 else {}),
        }
        for position in range(len(ids))
    ]
    rows += [
        {
            "external_id": "demo-open-03",
            "answer_id": formula,
            "criterion": position,
            "rater": rater,
            "value": "not_met",
            **({"comment": "+ gives no dose at all"} if rater == "ext-2" and position == 0 else {}),
        }
        for rater in ("ext-1", "ext-2")
        for position in range(6)
    ]
    with write_session(engine) as session:
        import_labels(session, project_name=seeded_project, data=to_jsonl(rows), filename="labels.jsonl")

    # a judge's labels are one more rater for agreement, never part of gold or of an export
    with write_session(engine) as session:
        judge = User(username="judge:demo@v1", kind="judge", can_sign_in=False, role="annotator")
        session.add(judge)
        session.flush()
        annotation = Annotation(answer_id=formula, rater_id=judge.id or 0, status="submitted")
        session.add(annotation)
        session.flush()
        _, _, formula_criteria = item_of(engine, seeded_project, formula)
        for criterion in formula_criteria:
            session.add(
                CriterionLabel(
                    annotation_id=annotation.id or 0,
                    answer_id=formula,
                    criterion_id=criterion.id or 0,
                    rater_id=judge.id or 0,
                    value="met",
                )
            )
        session.commit()

    with write_session(engine) as session:
        adjudication.refresh_gold(session, project_id=pid)
    curator = user_id(engine, "curator")
    with write_session(engine) as session:
        adjudication.settle(
            session,
            answer_id=graded_id,
            criterion_id=ids[1],
            value="met",
            rationale=RATIONALE,
            category="rater_error",
            actor_id=curator,
        )
    formula_external, formula_version, formula_criteria = item_of(engine, seeded_project, formula)
    graded_version = item_of(engine, seeded_project, graded_id)[1]
    return Graded(
        project=seeded_project,
        project_id=pid,
        graded=graded_id,
        formula=formula,
        adjudicated=(graded_id, ids[1]),
        criteria={graded_id: graded_criteria, formula: formula_criteria},
        external={graded_id: (graded_external, graded_version), formula: (formula_external, formula_version)},
        okafor=okafor,
        ext1=user_id(engine, "imported:ext-1"),
        ext2=user_id(engine, "imported:ext-2"),
    )


# --- gold ---------------------------------------------------------------------------------------------------------


def test_gold_export_has_one_row_per_gold_unit_with_every_column(engine, graded):
    """Test that the gold export holds every gold unit in order, each column as stored, raters pseudonymized."""
    count, data = run_export(engine, "gold", graded.project)
    rows = jsonl(data)
    assert count == len(rows) == 12  # 6 units of the graded answer, 6 of the formula answer
    assert all(list(row) == list(exports.GOLD_COLUMNS) for row in rows)

    def order(answer_id: int, position: int) -> tuple[str, int, int, int]:
        external, version = graded.external[answer_id]
        return (external, version, position, answer_id)

    expected_order = sorted(order(a, p) for a in (graded.graded, graded.formula) for p in range(6))
    assert [(r["item_id"], r["item_version"], int(r["criterion_id"].split("#")[1])) for r in rows] == [
        key[:3] for key in expected_order
    ]

    # pseudonyms by account id: dr.okafor first, then the imported raters; the judge is never a rater
    assert graded.okafor < graded.ext1 < graded.ext2
    okafor, ext1, ext2 = "rater-1", "rater-2", "rater-3"
    by_unit = {(r["answer_id"], r["criterion_id"]): r for r in rows}
    external, version = graded.external[graded.graded]
    criteria = graded.criteria[graded.graded]
    settled = by_unit[(f"answer-{graded.graded}", f"{external}#1")]
    with read_session(engine) as session:
        answer = items.get_answer(session=session, answer_id=graded.graded)
        assert answer is not None
        item = items.get_item(session=session, item_id=answer.item_id)
        assert item is not None
        model = dict((a.id, m) for a, m in items.list_answers(session=session, item_id=answer.item_id))[answer.id]
    assert settled == {
        "item_id": external,
        "item_version": version,
        "criterion_id": f"{external}#1",
        "criterion": criteria[1].text,
        "points": criteria[1].points,
        "tags": criteria[1].tags,
        "axis": criteria[1].axis,
        "conversation": item.conversation,
        "answer_id": f"answer-{graded.graded}",
        "answer": answer.text,
        "model": model,
        "labels": {okafor: "met", ext1: "not_met"},
        "comments": {ext1: "-- misses the threshold"},
        "gold": "met",
        "method": "adjudicated",
        "rationale": RATIONALE,
        "disagreement_category": "rater_error",
    }
    first = by_unit[(f"answer-{graded.graded}", f"{external}#0")]
    assert (first["labels"], first["comments"]) == ({okafor: "met", ext1: "met"}, {okafor: "Names the red flags."})
    assert (first["gold"], first["method"], first["rationale"], first["disagreement_category"]) == (
        "met",
        "unanimous",
        "",
        None,
    )
    formula_external, _ = graded.external[graded.formula]
    formula_rows = [r for r in rows if r["answer_id"] == f"answer-{graded.formula}"]
    assert [r["criterion"] for r in formula_rows] == [c.text for c in graded.criteria[graded.formula]]
    assert all(r["answer"] == FORMULA and r["model"] == "model-formula" for r in formula_rows)
    assert all(r["labels"] == {ext1: "not_met", ext2: "not_met"} for r in formula_rows)  # no judge
    assert [r["comments"] for r in formula_rows] == [{ext2: "+ gives no dose at all"}] + [{}] * 5
    assert {(r["gold"], r["method"]) for r in formula_rows} == {("not_met", "unanimous")}
    assert all(r["item_id"] == formula_external for r in formula_rows)


def test_gold_export_names_no_rater_unless_asked(engine, graded):
    """Test that a pseudonymized export holds no username, pseudonyms are stable, and names show when asked."""
    _, data = run_export(engine, "gold", graded.project)
    for username in ("dr.okafor", "imported:", "ext-1", "ext-2", "judge:"):
        assert username.encode() not in data
    assert {name for row in jsonl(data) for name in row["labels"]} == {"rater-1", "rater-2", "rater-3"}

    _, named = run_export(engine, "gold", graded.project, pseudonymize=False)
    labels = {name for row in jsonl(named) for name in row["labels"]}
    assert labels == {"dr.okafor", "imported:ext-1", "imported:ext-2"}
    assert b"judge:" not in named
    with read_session(engine) as session:
        assert exports.rater_names(session, project_id=graded.project_id) == {
            graded.okafor: "rater-1",
            graded.ext1: "rater-2",
            graded.ext2: "rater-3",
        }


def test_gold_csv_neutralises_formula_cells(engine, graded):
    """Test that the gold CSV has one record per row, formula-like text starts with "'" and numbers stay numbers."""
    _, data = run_export(engine, "gold", graded.project)
    rows = jsonl(data)
    count, raw = run_export(engine, "gold", graded.project, fmt="csv")
    records = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert count == len(rows) and records[0] == list(exports.GOLD_COLUMNS)
    assert raw.count(b"\r\n") >= len(records)
    by_answer = {r[exports.GOLD_COLUMNS.index("answer_id")]: r for r in records[1:]}
    formula = dict(zip(exports.GOLD_COLUMNS, by_answer[f"answer-{graded.formula}"], strict=True))
    assert formula["answer"] == "'" + FORMULA
    settled = next(dict(zip(exports.GOLD_COLUMNS, r, strict=True)) for r in records[1:] if r[-2] == "'" + RATIONALE)
    assert settled["method"] == "adjudicated" and settled["disagreement_category"] == "rater_error"
    for record, row in zip(records[1:], rows, strict=True):
        cells = dict(zip(exports.GOLD_COLUMNS, record, strict=True))
        assert int(cells["points"]) == row["points"]  # negative points are numbers, never neutralised
        assert json.loads(cells["labels"]) == row["labels"] and json.loads(cells["tags"]) == row["tags"]
        assert json.loads(cells["conversation"]) == row["conversation"]
        assert cells["disagreement_category"] == (row["disagreement_category"] or "")
        for column in ("criterion", "answer", "rationale", "model"):
            assert cells[column] == exports.neutralise(row[column])
    assert any(row["points"] < 0 for row in rows)


def test_neutralise_covers_every_formula_trigger():
    """Test that text starting with = + - @ tab or carriage return gets a leading quote, other text does not."""
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert exports.neutralise(text) == "'" + text
    for text in ("", "a=1", " =1", "'=1", "[1]"):
        assert exports.neutralise(text) == text


def test_gold_parquet_reads_back_as_the_jsonl_rows(engine, graded):
    """Test that the gold Parquet file, read with pyarrow, equals the JSONL rows (lists and objects as JSON)."""
    _, data = run_export(engine, "gold", graded.project)
    rows = jsonl(data)
    count, raw = run_export(engine, "gold", graded.project, fmt="parquet")
    table = pq.read_table(io.BytesIO(raw))
    assert count == table.num_rows == len(rows)
    assert table.column_names == list(exports.GOLD_COLUMNS)
    assert str(table.schema.field("points").type) == "int64"
    read = table.to_pylist()
    for row in read:
        for column in ("tags", "conversation", "labels", "comments"):
            row[column] = json.loads(row[column])
    assert read == rows


def test_exports_of_the_same_database_are_byte_identical(engine, graded):
    """Test that exporting twice gives the same bytes in every kind and format."""
    for kind, fmt in (("gold", "jsonl"), ("gold", "csv"), ("gold", "parquet"), ("healthbench", "jsonl")):
        first, second = run_export(engine, kind, graded.project, fmt), run_export(engine, kind, graded.project, fmt)
        assert first == second and first[0] > 0
    assert run_export(engine, "meta-eval", graded.project) == run_export(engine, "meta-eval", graded.project)


def test_gold_export_reads_in_pages(engine, graded, monkeypatch):
    """Test that an export read a few items and units at a time gives the same rows as one read at once."""
    _, whole = run_export(engine, "gold", graded.project)
    monkeypatch.setattr(exports, "ITEMS_PAGE", 1)
    monkeypatch.setattr(exports, "UNITS_CHUNK", 5)
    monkeypatch.setattr(exports, "ROW_GROUP", 4)
    assert run_export(engine, "gold", graded.project) == (12, whole)
    _, paged_parquet = run_export(engine, "gold", graded.project, fmt="parquet")
    assert pq.ParquetFile(io.BytesIO(paged_parquet)).num_row_groups == 3


@pytest.mark.parametrize("pseudonymize", [True, False])
def test_gold_jsonl_bytes_equal_the_rows_of_gold_rows_serialised_one_by_one(engine, graded, pseudonymize):
    """Test that the gold JSONL file, written from pieces serialised once each, has exactly the bytes of
    gold_rows' rows dumped one per line in the column order (named and pseudonymized)."""
    options = {} if pseudonymize else {"pseudonymize": False}
    _, data = run_export(engine, "gold", graded.project, **options)
    with read_session(engine) as session:
        found = projects.get_project_by_name(session=session, name=graded.project)
        assert found is not None and found.id is not None
        rows = list(exports.gold_rows(session, project_id=found.id, pseudonymize=pseudonymize))
    expected = b"".join(
        orjson.dumps({column: row[column] for column in exports.GOLD_COLUMNS}, option=orjson.OPT_APPEND_NEWLINE)
        for row in rows
    )
    assert len(rows) == 12 and data == expected


def test_gold_export_of_a_project_without_gold_is_empty(engine, seeded_project):
    """Test that a project without gold labels exports no rows: an empty JSONL, a CSV header, an empty Parquet."""
    assert run_export(engine, "gold", seeded_project) == (0, b"")
    count, raw = run_export(engine, "gold", seeded_project, fmt="csv")
    assert count == 0 and raw == (",".join(exports.GOLD_COLUMNS) + "\r\n").encode()
    count, raw = run_export(engine, "gold", seeded_project, fmt="parquet")
    table = pq.read_table(io.BytesIO(raw))
    assert count == table.num_rows == 0 and table.column_names == list(exports.GOLD_COLUMNS)


def test_export_refusals_say_what_is_wrong(engine, seeded_project):
    """Test that an unknown project, kind or format, and a CSV of a JSONL-only kind, are refused with a sentence."""
    cases = [
        ({"kind": "gold", "project_name": "Nowhere"}, "no project named 'Nowhere'"),
        ({"kind": "labels", "project_name": seeded_project}, "no 'labels' export"),
        ({"kind": "gold", "project_name": seeded_project, "fmt": "xlsx"}, "no 'xlsx' format"),
        ({"kind": "healthbench", "project_name": seeded_project, "fmt": "csv"}, "has no csv form"),
        ({"kind": "meta-eval", "project_name": seeded_project, "fmt": "parquet"}, "has no parquet form"),
    ]
    for options, message in cases:
        out = io.BytesIO()
        with read_session(engine) as session, pytest.raises(exports.ExportError, match=message):
            exports.export(session, out=out, **options)
        assert out.getvalue() == b""


def test_write_rows_keeps_column_order_and_writes_other_keys_after():
    """Test that JSONL keys follow the columns, then the row's other keys; CSV leaves missing cells empty."""
    rows = [{"b": 2, "extra": "x", "a": "é"}, {"a": "=1"}]
    out = io.BytesIO()
    assert exports.write_rows(rows, out, "jsonl", columns=("a", "b")) == 2
    assert out.getvalue() == '{"a":"é","b":2,"extra":"x"}\n{"a":"=1"}\n'.encode()
    out = io.BytesIO()
    assert exports.write_rows(iter(rows), out, "csv", columns=("a", "b")) == 2
    assert out.getvalue() == "a,b\r\né,2\r\n'=1,\r\n".encode()
    assert not out.closed
    with pytest.raises(exports.ExportError, match="no 'xml' format"):
        exports.write_rows(rows, io.BytesIO(), "xml", columns=("a",))


def test_export_filename_names_project_kind_and_format():
    """Test that an export's file name is made of the project, the kind and the format."""
    assert exports.export_filename(kind="gold", project_name="Demo clinic", fmt="csv") == "demo-clinic-gold.csv"
    assert exports.export_filename(kind="meta-eval", project_name="  ", fmt="jsonl") == "project-meta-eval.jsonl"


# --- HealthBench items ----------------------------------------------------------------------------------------------


def import_file(engine: Engine, project: str, data: bytes, filename: str) -> None:
    with write_session(engine) as session:
        import_items(session, project_name=project, data=data, filename=filename)


def test_healthbench_export_round_trips_to_identical_bytes(engine, shared_data):
    """Test that HealthBench rows imported, exported, imported into a new project and exported give the same
    bytes, and that each exported row equals its source row field by field."""
    source = (shared_data / HARD_30).read_bytes()
    import_file(engine, "HB one", source, "hard_sample_30.jsonl")
    count, first = run_export(engine, "healthbench", "HB one")
    import_file(engine, "HB two", first, "hb-one-healthbench.jsonl")
    again, second = run_export(engine, "healthbench", "HB two")
    assert count == again == 30
    assert first == second

    source_rows = {row["prompt_id"]: row for row in jsonl(source)}
    exported = jsonl(first)
    assert [row["prompt_id"] for row in exported] == sorted(source_rows)
    for row in exported:
        assert row == source_rows[row["prompt_id"]]  # every field the source row has, and nothing else
        assert list(row)[:4] == ["prompt_id", "prompt", "rubrics", "example_tags"]
    assert any(row["ideal_completions_data"] is None for row in exported)


def test_healthbench_export_of_the_demo_keeps_specialties_and_leaves_out_mcq(engine, seeded_project):
    """Test that the demo's open items export as their source rows (specialties, dimension) and no mcq item does."""
    count, data = run_export(engine, "healthbench", seeded_project)
    source = jsonl((Path(exports.__file__).parent / "demo_data" / "open_items.jsonl").read_bytes())
    assert count == 8
    assert jsonl(data) == sorted(source, key=lambda row: row["prompt_id"])


# --- HealthBench meta-eval ------------------------------------------------------------------------------------------


def test_meta_eval_export_round_trips_the_imported_rows(engine, shared_data):
    """Test that meta-eval rows imported and exported come back as the same rows with the same label per
    physician."""
    rows = meta_rows(shared_data)
    with write_session(engine) as session:
        import_meta_eval(session, project_name="Meta", data=to_jsonl(rows), filename="meta.jsonl")
    count, data = run_export(engine, "meta-eval", "Meta")
    exported = jsonl(data)
    assert count == len(exported) == len(rows)
    assert all(list(row) == list(exports.META_EVAL_COLUMNS) for row in exported)

    def key(row: dict[str, Any]) -> tuple[str, str, str]:
        rubric = row["rubric"] if isinstance(row["rubric"], str) else row["rubric"]["criterion"]
        return (row["prompt_id"], row["completion_id"], rubric)

    def labels(row: dict[str, Any]) -> dict[str, bool]:
        return dict(zip(row["anonymized_physician_ids"], row["binary_labels"], strict=True))

    given = {key(row): row for row in rows}
    with read_session(engine) as session:
        account = {u.username: u.id for u in session.exec(select(User).where(User.kind == "imported"))}
    assert {key(row) for row in exported} == set(given)
    for row in exported:
        source = given[key(row)]
        assert labels(row) == labels(source)
        assert (row["prompt"], row["completion"], row["category"]) == (
            source["prompt"],
            completion_text(source),
            source["category"],
        )
        account_ids = [account[f"healthbench:{physician}"] for physician in row["anonymized_physician_ids"]]
        assert account_ids == sorted(account_ids)  # in the order of the raters' accounts
    assert exported == sorted(exported, key=lambda r: r["prompt_id"])
    assert run_export(engine, "meta-eval", "Meta")[1] == data


def test_meta_eval_export_of_physicians_labels_uses_pseudonyms(engine, graded):
    """Test that the demo's meta-eval rows give physicians their pseudonyms, pair labels with them, and leave out
    the judge."""
    count, data = run_export(engine, "meta-eval", graded.project)
    rows = jsonl(data)
    assert count == len(rows) == 12
    external, _ = graded.external[graded.graded]
    criteria = graded.criteria[graded.graded]
    settled = next(
        r for r in rows if r["completion_id"] == f"answer-{graded.graded}" and r["rubric"] == criteria[1].text
    )
    assert settled["binary_labels"] == [True, False]
    assert settled["anonymized_physician_ids"] == ["rater-1", "rater-2"]
    assert (settled["prompt_id"], settled["category"]) == (external, None)
    formula = [r for r in rows if r["completion_id"] == f"answer-{graded.formula}"]
    assert {(tuple(r["anonymized_physician_ids"]), tuple(r["binary_labels"])) for r in formula} == {
        (("rater-2", "rater-3"), (False, False))
    }
    assert all(r["completion"] == FORMULA for r in formula)
    assert b"dr.okafor" not in data and b"judge:" not in data


def test_criterion_category_prefers_the_meta_eval_tag():
    """Test that a meta-eval item's category is its criterion's last tag, otherwise the last cluster tag."""
    tags = ["axis:accuracy", "cluster:a", "cluster:b"]
    assert exports.criterion_category(tags, "healthbench-meta") == "cluster:b"
    assert exports.criterion_category(["level:example", "theme:x"], "healthbench-meta") == "theme:x"
    assert exports.criterion_category(["cluster:a", "axis:accuracy"], "healthbench") == "cluster:a"
    assert exports.criterion_category(["axis:accuracy"], "csv") is None

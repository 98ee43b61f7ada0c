"""The Items page at scale: every filter and their combinations against a plain reference, pagination, the
queries a page takes (and that they run on indexes), the criteria to rewrite with their agreement figures,
and the page itself through AppTest: tag and flagged filters, bulk actions, the editor hand-off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
import streamlit
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from review import accounts, adjudication, catalog, label_import, rewriting, workflow
from review.catalog import ItemFilters
from review.demo import DEMO_PROJECT
from review.importing import import_items
from review.taxonomy import STATUSES
from storage.db import read_session, write_session
from storage.models import Answer, AuditEvent, Criterion, DuplicateFlag, Item, Project, User

PASSWORD = "items-page-test-pw"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECIALTIES = [["Cardiology"], ["Pediatrics", "Cardiology"], [], ["Neurology"]]
DIMENSIONS = ["knowledge", "care", None, "safety-ethics"]
TAG_SETS = [["alpha"], ["alpha", "beta"], [], ["50%_off"], ['ünï "q"'], ["beta"]]


# --- a catalogue with every kind of item ----------------------------------------------------------------------


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def medqa_rows(count: int) -> list[dict[str, Any]]:
    lines = (SHARED / "medqa" / "medqa_5options_test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:count]]


def healthbench_rows(count: int) -> list[dict[str, Any]]:
    lines = (SHARED / "healthbench" / "hard_sample_30.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:count]]


def mcq_row(n: int, source: dict[str, Any]) -> dict[str, Any]:
    """A real MedQA row as item m-NN, with a specialty, dimension and tags; every seventh mentions 50%."""
    row = {k: v for k, v in source.items() if k in ("question", "options", "answer_idx", "meta_info")}
    row.update(id=f"m-{n:02d}", specialties=SPECIALTIES[n % 4], tags=TAG_SETS[n % 6])
    if n % 7 == 3:
        row["question"] += " (About 50% of such patients.)"
    if DIMENSIONS[n % 4]:
        row["dimension"] = DIMENSIONS[n % 4]
    return row


def open_row(n: int, source: dict[str, Any], text: str = "") -> dict[str, Any]:
    """A real HealthBench row as item o-NN, with a specialty, dimension and tags; every fourth says under_score."""
    prompt = [dict(message) for message in source["prompt"]]
    prompt[-1]["content"] += (" under_score" if n % 4 == 1 else "") + text
    row: dict[str, Any] = {
        "prompt_id": f"o-{n:02d}",
        "prompt": prompt,
        "rubrics": source["rubrics"],
        "example_tags": TAG_SETS[(n + 2) % 6],
        "specialties": SPECIALTIES[(n + 1) % 4],
    }
    if DIMENSIONS[(n + 1) % 4]:
        row["dimension"] = DIMENSIONS[(n + 1) % 4]
    return row


def user(engine: Engine, username: str, role: str) -> int:
    with write_session(engine) as session:
        return accounts.create_user(session, username=username, role=role, password=PASSWORD).user_id


def ids_by_external(engine: Engine, project_id: int) -> dict[str, int]:
    with read_session(engine) as session:
        rows = session.exec(
            select(Item.external_id, Item.id).where(Item.project_id == project_id, Item.is_current == True)  # noqa: E712
        ).all()
    return {external: int(item_id or 0) for external, item_id in rows}


HB = healthbench_rows(15)


def build_catalogue(engine: Engine, name: str = "Cat") -> int:
    """30 MCQ and 15 open items with specialties, dimensions, tags (LIKE wildcards, quotes, accents), every status,
    a flagged criterion, a flag on an older version only, an open and a dismissed duplicate flag; returns the
    project id."""
    curator = user(engine, f"{name.lower()}.curator", "curator")
    with write_session(engine) as session:
        mcq = jsonl([mcq_row(n, row) for n, row in enumerate(medqa_rows(30))])
        import_items(session, project_name=name, data=mcq, filename="m.jsonl")
        import_items(
            session, project_name=name, data=jsonl([open_row(n, row) for n, row in enumerate(HB)]), filename="o.jsonl"
        )
        project_id = int(session.exec(select(Project.id).where(Project.name == name)).one() or 0)
    ids = ids_by_external(engine, project_id)
    by_status: dict[str, list[int]] = {status: [] for status in STATUSES}
    for n, external in enumerate(sorted(ids)):
        by_status[STATUSES[n % 4]].append(ids[external])
    with write_session(engine) as session:
        moves = [("in_review", "in_review"), ("approved", "in_review"), ("retired", "retired")]
        for status, first in moves:
            workflow.change_status(session, item_ids=by_status[status], to=first, actor_id=curator, role="curator")
        workflow.change_status(
            session, item_ids=by_status["approved"], to="approved", actor_id=curator, role="curator", reason="Seed."
        )
    with read_session(engine) as session:
        criterion_of = {
            item_id: int(c or 0)
            for item_id, c in session.exec(select(Criterion.item_id, Criterion.id).where(Criterion.position == 0))
        }
    with write_session(engine) as session:
        adjudication.flag_criterion(session, criterion_id=criterion_of[ids["o-04"]], reason="Vague.", actor_id=curator)
        adjudication.flag_criterion(session, criterion_id=criterion_of[ids["o-07"]], reason="Old.", actor_id=curator)
    with write_session(engine) as session:  # o-07 is rewritten: its new version carries no flag
        import_items(
            session,
            project_name=name,
            data=jsonl([open_row(7, HB[7], " Reworded.")]),
            filename="o7.jsonl",
            on_conflict="new-version",
        )
        session.add(
            DuplicateFlag(project_id=project_id, item_id=ids["m-03"], match_item_id=ids["m-09"], scope="project")
        )
        session.add(
            DuplicateFlag(
                project_id=project_id,
                item_id=ids["m-05"],
                match_item_id=ids["m-11"],
                scope="project",
                status="dismissed",
            )
        )
    return project_id


def reference_ids(engine: Engine, project_id: int, filters: ItemFilters) -> list[int]:
    """The matching item ids, computed in Python from every stored row (the reference for the queries)."""
    with read_session(engine) as session:
        rows = session.exec(select(Item).where(Item.project_id == project_id)).all()
        flagged_items = set(session.exec(select(Criterion.item_id).where(Criterion.flagged == True)).all())  # noqa: E712
        open_flags = set(session.exec(select(DuplicateFlag.item_id).where(DuplicateFlag.status == "open")).all())
    needle = (filters.text or "").strip().lower()
    found = []
    for item in rows:
        haystacks = [item.external_id, item.question or "", json.dumps(item.conversation, ensure_ascii=False)]
        if not (
            item.is_current
            and (filters.kind is None or item.kind == filters.kind)
            and (filters.status is None or item.status == filters.status)
            and (filters.specialty is None or filters.specialty in item.specialties)
            and (filters.dimension is None or item.dimension == filters.dimension)
            and all(tag in item.tags for tag in filters.tags)
            and (not filters.flagged or item.id in flagged_items or item.id in open_flags)
            and (not needle or any(needle in text.lower() for text in haystacks))
        ):
            continue
        found.append(int(item.id or 0))
    return sorted(found)


def listed_ids(engine: Engine, project_id: int, filters: ItemFilters, page_size: int = 7) -> tuple[list[int], int]:
    """Every item id the catalog lists, page after page, and the total it reports."""
    with read_session(engine) as session:
        first = catalog.item_listing(session, project_id=project_id, filters=filters, page=1, page_size=page_size)
        listed = [row.item_id for row in first.rows]
        for page in range(2, first.pages + 1):
            listing = catalog.item_listing(
                session, project_id=project_id, filters=filters, page=page, page_size=page_size
            )
            assert (listing.page, listing.total) == (page, first.total)
            listed += [row.item_id for row in listing.rows]
    return listed, first.total


FILTER_CASES: list[dict[str, Any]] = [
    {},
    {"kind": "open"},
    {"kind": "mcq"},
    {"specialty": "Cardiology"},
    {"dimension": "care"},
    {"text": "PAIN"},  # in MCQ stems and open conversations, any case
    {"text": "  m-1 "},  # external ids m-10..m-19, trimmed
    {"text": "50%"},  # a LIKE wildcard taken literally
    {"text": "under_score"},
    {"text": "n_der"},  # "_" is not a wildcard: nothing matches
    {"tags": ("alpha",)},
    {"tags": ("alpha", "beta")},
    {"tags": ("50%_off",)},
    {"tags": ('ünï "q"',)},
    {"tags": ("alph",)},  # a tag matches whole, never a part of another
    {"flagged": True},
    {"flagged": True, "kind": "mcq"},
    {"text": "year-old", "kind": "mcq", "tags": ("beta",)},
    {"specialty": "Cardiology", "dimension": "knowledge", "tags": ("alpha",)},
]


def check_filters(engine: Engine, project_id: int) -> None:
    for case, status in product(FILTER_CASES, (None, *STATUSES)):
        filters = ItemFilters(status=status, **case)
        expected = reference_ids(engine, project_id, filters)
        listed, total = listed_ids(engine, project_id, filters)
        assert (listed, total) == (expected, len(expected)), (case, status)
        with read_session(engine) as session:
            matching = workflow.matching_item_ids(session, project_id=project_id, status=status, **case)
            assert matching == expected
            assert catalog.count_items(session, project_id=project_id, filters=filters) == len(expected)


def test_every_filter_and_combination_lists_what_the_reference_finds(engine):
    """Test that each filter alone and combined with each status (kind, specialty, dimension, text in ids, stems
    and conversations, tags all present, flagged criteria or open duplicate flags) lists, page after page, exactly
    the current items a plain Python filter finds, and that the cases are not trivial."""
    project_id = build_catalogue(engine)
    check_filters(engine, project_id)
    sizes = {json.dumps(case): len(reference_ids(engine, project_id, ItemFilters(**case))) for case in FILTER_CASES}
    assert sizes[json.dumps({})] == 45
    assert sizes[json.dumps({"flagged": True})] == 2  # o-04's criterion and m-03's open flag; not o-07, not m-05
    assert sizes[json.dumps({"text": "n_der"})] == 0 and sizes[json.dumps({"tags": ["alph"]})] == 0
    assert all(
        0 < size < 45 for key, size in sizes.items() if key not in ('{"text": "n_der"}', '{"tags": ["alph"]}', "{}")
    )


def test_filters_run_the_same_on_postgresql(pg_engine):
    """Test that every filter and combination lists the reference's items on PostgreSQL too, with its tags."""
    project_id = build_catalogue(pg_engine)
    check_filters(pg_engine, project_id)
    with read_session(pg_engine) as session:
        assert catalog.project_tags(session, project_id=project_id) == ["50%_off", "alpha", "beta", 'ünï "q"']


def test_project_tags_and_flag_marks(engine):
    """Test that the project's tags are listed once each, sorted, and that a row says what is flagged."""
    project_id = build_catalogue(engine)
    with read_session(engine) as session:
        assert catalog.project_tags(session, project_id=project_id) == ["50%_off", "alpha", "beta", 'ünï "q"']
        rows, total = catalog.item_page(session, project_id=project_id, flagged=True)
    assert total == 2
    assert {row.external_id: row.flagged for row in rows} == {
        "m-03": "possible duplicate",
        "o-04": "1 criterion to rewrite",
    }
    assert catalog.flag_marks(2, 3) == "2 criteria to rewrite; 3 possible duplicates"
    assert catalog.flag_marks(0, 0) == ""


def test_a_page_past_the_end_shows_the_last_page(engine):
    """Test that asking for a page beyond the last (after a filter narrowed the list) shows the last page."""
    project_id = build_catalogue(engine)
    for filters in (ItemFilters(status="approved"), ItemFilters(text="case")):
        expected = reference_ids(engine, project_id, filters)
        with read_session(engine) as session:
            listing = catalog.item_listing(session, project_id=project_id, filters=filters, page=99, page_size=5)
        last = -(-len(expected) // 5)
        assert (listing.page, listing.pages, listing.total) == (last, last, len(expected))
        assert [row.item_id for row in listing.rows] == expected[(last - 1) * 5 :]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements run on the engine while the test runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def plans(engine: Engine, seen: list[tuple[str, Any]]) -> list[str]:
    with engine.connect() as connection:
        return [
            " | ".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all())
            for sql, params in seen
            if sql.lstrip().upper().startswith(("SELECT", "WITH"))
        ]


@pytest.mark.parametrize(
    ("filters", "page", "queries"),
    [
        (ItemFilters(), 2, 3),  # count, page of ids, rows
        (ItemFilters(status="in_review"), 2, 3),
        (ItemFilters(kind="mcq", status="approved"), 2, 2),  # ids and total in one statement, rows
        (ItemFilters(text="pain"), 2, 2),
        (ItemFilters(tags=("alpha",)), 2, 2),
        (ItemFilters(flagged=True), 1, 2),
    ],
)
def test_a_page_takes_few_queries_and_the_indexes(engine, statements, filters, page, queries):
    """Test that a page of the list is one count and one page query (or one statement for both when rows must be
    read), plus the rows, and that no filter answered by an index reads the item table in full."""
    project_id = build_catalogue(engine)
    statements.clear()
    with read_session(engine) as session:
        listing = catalog.item_listing(session, project_id=project_id, filters=filters, page=page, page_size=5)
    assert listing.page == page and listing.rows
    seen = [(sql, params) for sql, params in statements if "item" in sql]
    assert listing.total == len(reference_ids(engine, project_id, filters))
    assert len(seen) == queries
    found = plans(engine, seen)
    rows_plan = found[-1]
    assert "USING INTEGER PRIMARY KEY" in rows_plan  # the page's rows are fetched by id
    for plan in found[:-1]:
        if filters.text or filters.tags or filters.flagged:
            assert "ix_item_project" in plan  # the project's current items only, then their rows
        else:
            assert "USING COVERING INDEX ix_item_project" in plan and "SCAN item" not in plan, plan


# --- criteria to rewrite ------------------------------------------------------------------------------------------


def labelled_criterion(engine: Engine) -> tuple[int, int, int]:
    """Three imported raters label criterion 1 of demo-open-02 on its three answers (one unanimous answer, two
    split) and criterion 2 all "met"; both are flagged. Returns the project id and the two criterion ids."""
    with read_session(engine) as session:
        item = session.exec(
            select(Item).where(Item.external_id == "demo-open-02", Item.is_current == True)  # noqa: E712
        ).one()
        answers = [
            int(a or 0)
            for a in session.exec(select(Answer.id).where(Answer.item_id == item.id).order_by(col(Answer.id)))
        ]
        criteria = [
            int(c or 0)
            for c in session.exec(
                select(Criterion.id).where(Criterion.item_id == item.id).order_by(col(Criterion.position))
            )
        ]
    assert len(answers) == 3
    split = {
        "rater-a": ["met", "met", "not_met"],
        "rater-b": ["met", "not_met", "not_met"],
        "rater-c": ["met", "met", "met"],
    }
    labels = [
        {"external_id": "demo-open-02", "answer_id": answer, "criterion": 1, "rater": rater, "value": values[n]}
        for rater, values in split.items()
        for n, answer in enumerate(answers)
    ] + [
        {"external_id": "demo-open-02", "answer_id": answer, "criterion": 2, "rater": rater, "value": "met"}
        for rater in split
        for answer in answers
    ]
    curator = user(engine, "rw.curator", "curator")
    with write_session(engine) as session:
        label_import.import_labels(session, project_name=DEMO_PROJECT, data=jsonl(labels), filename="labels.jsonl")
        project_id = item.project_id
        adjudication.flag_criterion(session, criterion_id=criteria[1], reason="Which dose counts?", actor_id=curator)
    with write_session(engine) as session:
        adjudication.flag_criterion(session, criterion_id=criteria[2], reason="Always met.", actor_id=curator)
    return project_id, criteria[1], criteria[2]


def expected_figures() -> dict[str, float]:
    """Percent agreement, Krippendorff's alpha and Gwet's AC1 of the split criterion, worked out independently:
    units (answers) with labels met/met/met, met/not/met, not/not/met (1 = met)."""
    units = [[1, 1, 1], [1, 0, 1], [0, 0, 1]]
    agreeing = sum(m * (m - 1) + (3 - m) * (2 - m) for m in (sum(u) for u in units))
    percent = agreeing / (len(units) * 3 * 2)
    alpha = krippendorff.alpha(reliability_data=np.array(units).T, level_of_measurement="nominal")
    p_a = percent
    pi_met = sum(sum(u) / 3 for u in units) / 3
    p_e = 2 * pi_met * (1 - pi_met)
    return {"percent": percent, "alpha": float(alpha), "ac1": (p_a - p_e) / (1 - p_e)}


def test_criteria_to_rewrite_carry_their_agreement_figures(engine, seeded_project):
    """Test that each flagged criterion is listed with its reason, units with two labels or more, percent
    agreement, Krippendorff's alpha, Gwet's AC1 and disputed units, matching an independent computation, and
    that a statistic without a value is shown as undefined with its reason."""
    project_id, split, unanimous = labelled_criterion(engine)
    with read_session(engine) as session:
        rows = {row.criterion_id: row for row in rewriting.criteria_to_rewrite(session, project_id=project_id)}
    assert set(rows) == {split, unanimous}
    figures = expected_figures()
    row = rows[split]
    assert (row.item_external_id, row.position, row.reason) == ("demo-open-02", 1, "Which dose counts?")
    assert (row.units_labelled, row.units_shared, row.disputed) == (3, 3, 2)
    assert row.percent_agreement == pytest.approx(figures["percent"], abs=1e-12)
    assert row.krippendorff_alpha == pytest.approx(figures["alpha"], abs=1e-12)
    assert row.gwet_ac1 == pytest.approx(figures["ac1"], abs=1e-12)
    same = rows[unanimous]
    assert (same.units_shared, same.disputed, same.percent_agreement) == (3, 0, 1.0)
    assert rewriting.figure_text(same.krippendorff_alpha) == (
        "undefined (every label has the same value, so chance agreement is 1)"
    )
    assert rewriting.figure_text(row.percent_agreement) == f"{figures['percent']:.3f}"


# --- the page ------------------------------------------------------------------------------------------------


def open_items(at: AppTest) -> AppTest:
    return at.switch_page("pages/items.py").run()


def caption(at: AppTest) -> str:
    [found] = [c.value for c in at.caption if " items match" in c.value]
    return found


def listed(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["external_id"])


def demo_ids(engine: Engine) -> dict[str, int]:
    with read_session(engine) as session:
        project_id = int(session.exec(select(Project.id).where(Project.name == DEMO_PROJECT)).one() or 0)
    return ids_by_external(engine, project_id)


def test_filter_by_tag_and_flagged_on_the_page(app, seeded_project, engine):
    """Test that a curator narrows the list to the items having every chosen tag, then to flagged items, and
    that the table shows tags and what is flagged."""
    ids = demo_ids(engine)
    curator = user(engine, "page.curator", "curator")
    with write_session(engine) as session:
        workflow.tag_items(
            session,
            item_ids=[ids["demo-open-01"], ids["demo-mcq-01"]],
            add=["panel"],
            remove=[],
            actor_id=curator,
            role="curator",
        )
        workflow.tag_items(
            session, item_ids=[ids["demo-mcq-01"]], add=["2026"], remove=[], actor_id=curator, role="curator"
        )
        criterion = session.exec(select(Criterion.id).where(Criterion.item_id == ids["demo-open-02"])).first()
        adjudication.flag_criterion(session, criterion_id=int(criterion or 0), reason="Vague.", actor_id=curator)
    at = open_items(app.sign_in("curator"))
    assert caption(at) == "13 items match · page 1 of 1"
    options = at.multiselect(key="items_filter_tags").options
    assert {"2026", "panel"} <= set(options) and options == sorted(options) and len(options) == len(set(options))
    at.multiselect(key="items_filter_tags").set_value(["panel"]).run()
    assert caption(at) == "2 items match · page 1 of 1"
    assert listed(at) == ["demo-open-01", "demo-mcq-01"]
    at.multiselect(key="items_filter_tags").set_value(["panel", "2026"]).run()
    assert listed(at) == ["demo-mcq-01"]
    assert list(at.dataframe[0].value["tags"]) == ["panel, 2026"]
    at.multiselect(key="items_filter_tags").set_value(["panel"]).run()
    with write_session(engine) as session:  # another curator, meanwhile: the kept list of matches is renewed
        workflow.tag_items(
            session, item_ids=[ids["demo-open-01"]], add=[], remove=["panel"], actor_id=curator, role="curator"
        )
    at.run()
    assert listed(at) == ["demo-mcq-01"]
    at.multiselect(key="items_filter_tags").set_value([]).run()
    at.checkbox(key="items_filter_flagged").check().run()
    assert caption(at) == "1 items match · page 1 of 1"
    table = at.dataframe[0].value
    assert list(table["external_id"]) == ["demo-open-02"]
    assert list(table["flagged"]) == ["1 criterion to rewrite"]
    assert list(table.columns) == [
        "external_id",
        "kind",
        "status",
        "version",
        "specialties",
        "dimension",
        "tags",
        "flagged",
        "summary",
    ]


def flow_project(engine: Engine) -> dict[str, int]:
    """Project "Flow": three MCQ items in review, one draft; returns their ids by external id."""
    rows = [
        {"id": f"F-{n}", "question": f"Stem {n}?", "options": {"A": "x", "B": "y"}, "answer_idx": "A"} for n in range(3)
    ]
    with write_session(engine) as session:
        import_items(session, project_name="Flow", data=jsonl(rows), filename="f.jsonl", status="in_review")
        draft = [{"id": "F-draft", "question": "Draft stem?", "options": {"A": "x", "B": "y"}, "answer_idx": "B"}]
        import_items(session, project_name="Flow", data=jsonl(draft), filename="d.jsonl", status="draft")
        project_id = int(session.exec(select(Project.id).where(Project.name == "Flow")).one() or 0)
    return ids_by_external(engine, project_id)


def item_statuses(engine: Engine, item_ids: list[int]) -> list[str]:
    with read_session(engine) as session:
        found = dict(session.exec(select(Item.id, Item.status).where(col(Item.id).in_(item_ids))).all())
    return [found[i] for i in item_ids]


def test_bulk_approve_chosen_items_reports_and_stores(app, seeded_project, engine):
    """Test that a curator approves chosen items with a reason, sees "2 items approved; 1 refused:" with the
    refused item and its sentence, and that the statuses and the audit are stored."""
    ids = flow_project(engine)
    at = open_items(app.sign_in("curator"))
    at.selectbox(key="items_project").set_value("Flow").run()
    assert at.radio(key="items_bulk_scope").value == "chosen"
    at.multiselect(key="items_bulk_selected").set_value([ids["F-0"], ids["F-2"], ids["F-draft"]])
    at.selectbox(key="items_bulk_action").set_value("approve").run()
    at.text_input(key="items_bulk_reason").set_value("Checked at the panel meeting.").run()
    at.button(key="items_bulk_apply").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["2 items approved; 1 refused:"]
    refused = at.dataframe[1].value  # after the items table
    assert refused.values.tolist() == [["F-draft", "It is a draft: it can be sent to review or retired, not approved."]]
    assert item_statuses(engine, [ids["F-0"], ids["F-1"], ids["F-2"], ids["F-draft"]]) == [
        "approved",
        "in_review",
        "approved",
        "draft",
    ]
    assert list(at.dataframe[0].value["status"]) == ["approved", "in_review", "approved", "draft"]
    with read_session(engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "item.status")).all()
        curator_id = session.exec(select(User.id).where(User.username == "curator")).one()
    assert sorted((e.entity_id, e.detail["reason"], e.detail["override"], e.actor_id) for e in events) == [
        (ids["F-0"], "Checked at the panel meeting.", True, curator_id),
        (ids["F-2"], "Checked at the panel meeting.", True, curator_id),
    ]


def test_bulk_whole_page_and_tag_actions(app, seeded_project, engine):
    """Test that "select the whole page" sends every listed draft to review (others refused) and that the tag
    actions add and remove a tag on the chosen items, shown as text."""
    ids = flow_project(engine)
    at = open_items(app.sign_in("curator"))
    at.selectbox(key="items_project").set_value("Flow").run()
    at.checkbox(key="items_bulk_page").check()
    at.selectbox(key="items_bulk_action").set_value("send_to_review").run()
    at.button(key="items_bulk_apply").click().run()
    assert [w.value for w in at.warning] == ["1 item sent to review; 3 refused:"]
    assert item_statuses(engine, [ids["F-draft"]]) == ["in_review"]

    at.checkbox(key="items_bulk_page").uncheck().run()
    at.multiselect(key="items_bulk_selected").set_value([ids["F-1"]])
    at.selectbox(key="items_bulk_action").set_value("add_tag").run()
    at.text_input(key="items_bulk_tag").set_value("<b>panel</b>").run()
    at.button(key="items_bulk_apply").click().run()
    assert [s.value for s in at.success] == ["Tag added to 1 item; 0 already had it."]
    assert "Tag: <b>panel</b>" in [t.value for t in at.text]
    with read_session(engine) as session:
        assert session.get(Item, ids["F-1"]).tags == ["<b>panel</b>"]  # type: ignore[union-attr]
    assert at.multiselect(key="items_filter_tags").options == ["<b>panel</b>"]

    at.text_input(key="items_bulk_tag").set_value("a,b").run()
    at.button(key="items_bulk_apply").click().run()
    assert [e.value for e in at.error] == ["Tag to add 'a,b': a tag cannot hold a comma."]


def test_bulk_retire_everything_matching_the_filters(app, seeded_project, engine):
    """Test that "all N items matching the filters" retires every approved item of the demo project, however
    many pages they fill, and nothing else."""
    ids = demo_ids(engine)
    with read_session(engine) as session:
        approved = sorted(int(i or 0) for i in session.exec(select(Item.id).where(Item.status == "approved")).all())
    assert len(approved) == 8
    at = open_items(app.sign_in("curator"))
    at.selectbox(key="items_filter_status").set_value("approved").run()
    assert caption(at) == "8 items match · page 1 of 1"
    at.radio(key="items_bulk_scope").set_value("matching")
    at.selectbox(key="items_bulk_action").set_value("retire").run()
    at.button(key="items_bulk_apply").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["8 items retired."]
    assert caption(at) == "0 items match · page 1 of 1"
    assert set(item_statuses(engine, approved)) == {"retired"}
    others = [i for i in ids.values() if i not in approved]
    assert set(item_statuses(engine, others)) == {"in_review"}


def test_physician_sees_no_bulk_actions_nor_rewrite_list(as_physician, engine):
    """Test that a physician's Items page has no bulk actions and no criteria to rewrite, offers New item, and
    offers Edit on a draft only (physicians edit the drafts they wrote)."""
    at = open_items(as_physician)
    assert not at.exception
    keys = {w.key for w in [*at.button, *at.radio, *at.multiselect, *at.selectbox, *at.text_input, *at.checkbox]}
    assert not {key for key in keys if key and key.startswith("items_bulk")}
    assert "items_new" in keys
    assert "Criteria to rewrite" not in [e.label for e in at.expander]
    at.selectbox(key="items_view").set_value(demo_ids(engine)["demo-open-01"]).run()
    assert "items_edit" not in [b.key for b in at.button]


@pytest.fixture
def switched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pages st.switch_page was asked for (the editor page is not needed to test the hand-off)."""
    asked: list[str] = []
    monkeypatch.setattr(streamlit, "switch_page", lambda page: asked.append(str(page)))
    return asked


def test_edit_and_new_item_hand_over_to_the_editor(app, seeded_project, engine, switched):
    """Test that Edit on an opened item and New item put the item id (or the new item's kind) in the session
    and switch to the editor page."""
    ids = demo_ids(engine)
    at = open_items(app.sign_in("curator"))
    assert switched == []
    at.selectbox(key="items_view").set_value(ids["demo-open-03"]).run()
    at.button(key="items_edit").click().run()
    assert switched == ["pages/edit_item.py"]
    assert at.session_state["edit_item_id"] == ids["demo-open-03"]
    at.selectbox(key="items_new_kind").set_value("mcq")
    at.button(key="items_new").click().run()
    assert switched == ["pages/edit_item.py"] * 2
    assert "edit_item_id" not in at.session_state
    assert at.session_state["edit_new_kind"] == "mcq"


def rewrite_tables(at: AppTest) -> list[Any]:
    return [frame.value for frame in at.dataframe if "flagged because" in frame.value.columns]


def test_rewrite_list_shows_flagged_criteria_with_their_figures(app, seeded_project, engine, switched):
    """Test that the criteria to rewrite, once opened, list each flagged criterion with its reason and figures
    (undefined ones with their reason), and that Edit opens its item in the editor."""
    project_id, split, unanimous = labelled_criterion(engine)
    at = open_items(app.sign_in("curator"))
    assert "Criteria to rewrite" in [e.label for e in at.expander]
    assert not rewrite_tables(at)  # nothing computed while closed
    at.session_state["items_rewrite_open"] = True
    at.run()
    assert not at.exception
    [table] = rewrite_tables(at)
    figures = expected_figures()
    rows = {int(r["#"]): r for r in table.to_dict("records")}
    assert set(rows) == {2, 3}
    assert rows[2]["flagged because"] == "Which dose counts?"
    assert (rows[2]["units with 2+ labels"], rows[2]["disputed units"]) == (3, 2)
    assert rows[2]["percent agreement"] == f"{figures['percent']:.3f}"
    assert rows[2]["Krippendorff's alpha"] == f"{figures['alpha']:.3f}"
    assert rows[2]["Gwet's AC1"] == f"{figures['ac1']:.3f}"
    assert rows[3]["Krippendorff's alpha"] == "undefined (every label has the same value, so chance agreement is 1)"
    assert not any("nan" in str(value).lower() for row in rows.values() for value in row.values())
    at.button(key=f"items_rewrite_edit_{split}").click().run()
    assert switched == ["pages/edit_item.py"]
    ids = demo_ids(engine)
    assert at.session_state["edit_item_id"] == ids["demo-open-02"]

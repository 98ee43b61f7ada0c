"""The Item editor page through Streamlit's AppTest: write items from scratch, fix what the page names, edit an
item that has labels (a new version, the old labels intact), and keep the draft across pages.

Every test runs the real app (app.py and pages/edit_item.py) against a fresh SQLite file and checks what is
stored and what the page shows. See tests/conftest.py for why `like_a_running_server` is needed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, func, select
from streamlit.testing.v1 import AppTest

from review import duplicates, endpoints
from review.demo import DEMO_PROJECT
from review.importing import import_items
from storage.db import read_session, write_session
from storage.models import AuditEvent, Criterion, CriterionLabel, DuplicateFlag, GoldLabel, Item, Project, User
from tests.labelled_demo import physicians_and_gold
from tests.openai_stub import StubServer

PAGE = "pages/edit_item.py"


def open_editor(at: AppTest, item_id: int | None = None) -> AppTest:
    if item_id is not None:
        at.session_state["edit_item_id"] = item_id
    return at.switch_page(PAGE).run()


def start_new(at: AppTest, kind: str) -> AppTest:
    at.selectbox(key="edit_pick").set_value("new")
    at.radio(key="edit_new_kind").set_value(kind)
    return at.button(key="edit_open").click().run()


def uids(at: AppTest, rows: str) -> list[int]:
    return [row["uid"] for row in at.session_state["edit_draft"][rows]]


def click(at: AppTest, key: str) -> AppTest:
    return at.button(key=key).click().run()


def shown(at: AppTest, kind: str) -> list[str]:
    return [str(element.value) for element in getattr(at, kind)]


def items_in(engine: Engine, external_id: str) -> list[Item]:
    with read_session(engine) as session:
        return list(session.exec(select(Item).where(Item.external_id == external_id).order_by(col(Item.version))))


def criteria_of(engine: Engine, item_id: int) -> list[tuple[str, int, str | None, list[str]]]:
    with read_session(engine) as session:
        rows = session.exec(select(Criterion).where(Criterion.item_id == item_id).order_by(col(Criterion.position)))
        return [(c.text, c.points, c.axis, list(c.tags)) for c in rows]


def count(engine: Engine, table: Any) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def fill_criterion(at: AppTest, uid: int, text: str, points: int, axis: str = "", tags: str = "") -> None:
    at.text_area(key=f"edit_criteria_text_{uid}").set_value(text)
    at.number_input(key=f"edit_criteria_points_{uid}").set_value(points)
    at.selectbox(key=f"edit_criteria_axis_{uid}").set_value(axis)
    at.text_input(key=f"edit_criteria_tags_{uid}").set_value(tags)


def test_curator_writes_an_open_item_from_scratch(as_curator, engine):
    """Test that a curator writes turns and rubric rows, reorders and deletes, sees the problem named, then saves."""
    at = start_new(open_editor(as_curator), "open")
    assert not at.exception
    assert [t.value for t in at.title] == ["Item editor"]
    (first_turn,) = uids(at, "turns")
    at.text_area(key=f"edit_turns_content_{first_turn}").set_value("I feel faint when I stand up quickly.")
    at = click(at, "edit_add_turn")
    at = click(at, "edit_add_turn")
    _, second_turn, third_turn = uids(at, "turns")
    assert at.selectbox(key=f"edit_turns_role_{second_turn}").value == "assistant"
    assert at.selectbox(key=f"edit_turns_role_{third_turn}").value == "user"
    at.text_area(key=f"edit_turns_content_{second_turn}").set_value("Do you take any blood pressure medicines?")
    at.text_area(key=f"edit_turns_content_{third_turn}").set_value("Yes, I started amlodipine last week.")
    for _ in range(3):
        at = click(at, "edit_add_criterion")
    one, two, three = uids(at, "criteria")
    fill_criterion(at, one, "Links the symptom to the new antihypertensive.", 7, "accuracy")
    fill_criterion(at, two, "A criterion to delete.", 2)
    fill_criterion(at, three, "Tells the patient to stop all medicines at once.", 0, "accuracy", "level:example")
    at = click(at, f"edit_criteria_up_{three}")
    assert uids(at, "criteria") == [one, three, two]
    at = click(at, f"edit_criteria_remove_{two}")
    assert uids(at, "criteria") == [one, three]
    assert at.text_area(key=f"edit_turns_content_{second_turn}").value == "Do you take any blood pressure medicines?"
    items_before = count(engine, Item)

    at = click(at, "edit_save")
    assert not at.exception
    assert "Criterion 2: points must be a whole number from -10 to 10 other than 0, not 0." in shown(at, "error")
    assert count(engine, Item) == items_before

    at.number_input(key=f"edit_criteria_points_{three}").set_value(-6)
    at.text_input(key="edit_tags").set_value("theme:hypotension, source:clinic")
    at.multiselect(key="edit_specialties").set_value(["Cardiology"])
    at.selectbox(key="edit_dimension").set_value("care")
    at = click(at, "edit_save")
    assert not at.exception and not at.error
    assert "Created item local-00001 (version 1, draft)." in shown(at, "success")
    (item,) = items_in(engine, "local-00001")
    assert (item.kind, item.status, item.version, item.project_id) == ("open", "draft", 1, item.project_id)
    assert item.conversation == [
        {"role": "user", "content": "I feel faint when I stand up quickly."},
        {"role": "assistant", "content": "Do you take any blood pressure medicines?"},
        {"role": "user", "content": "Yes, I started amlodipine last week."},
    ]
    assert (item.tags, item.specialties, item.dimension) == (
        ["theme:hypotension", "source:clinic"],
        ["Cardiology"],
        "care",
    )
    assert criteria_of(engine, item.id) == [
        ("Links the symptom to the new antihypertensive.", 7, "accuracy", ["axis:accuracy"]),
        ("Tells the patient to stop all medicines at once.", -6, "accuracy", ["level:example", "axis:accuracy"]),
    ]
    # the page now edits the saved item
    assert at.session_state["edit_draft"]["item_id"] == item.id
    assert at.text_input(key="edit_external_id").value == "local-00001"
    assert any(label.startswith("History (1 version)") for label in [e.label for e in at.expander])


def test_editing_a_labelled_item_makes_version_2_and_keeps_the_old_labels(as_curator, engine):
    """Test that editing a graded item shows "version 2", and the old version's labels and gold stay as they were."""
    physicians_and_gold(engine, DEMO_PROJECT)
    (old,) = items_in(engine, "demo-open-01")
    with read_session(engine) as session:
        criterion_ids = list(session.exec(select(Criterion.id).where(Criterion.item_id == old.id)))
        labels_before = sorted(
            session.exec(
                select(CriterionLabel.id, CriterionLabel.criterion_id, CriterionLabel.value).where(
                    col(CriterionLabel.criterion_id).in_(criterion_ids)
                )
            ).all()
        )
        gold_before = sorted(
            session.exec(
                select(GoldLabel.id, GoldLabel.value).where(col(GoldLabel.criterion_id).in_(criterion_ids))
            ).all()
        )
    assert labels_before and gold_before
    at = open_editor(as_curator, old.id)
    assert not at.exception
    assert at.session_state["edit_draft"]["item_id"] == old.id
    first = uids(at, "criteria")[0]
    at.number_input(key=f"edit_criteria_points_{first}").set_value(9)
    at.text_input(key="edit_change_note").set_value("Less weight on the referral.")
    at = click(at, "edit_save")
    assert not at.exception and not at.error
    assert (
        f"Saved as version 2: the old version keeps its {len(labels_before)} labels; 3 answers copied to grade again."
        in shown(at, "success")
    )
    old_row, new_row = items_in(engine, "demo-open-01")
    assert (old_row.id, old_row.is_current, new_row.version, new_row.is_current) == (old.id, False, 2, True)
    assert new_row.change_note == "Less weight on the referral."
    with read_session(engine) as session:
        labels_after = sorted(
            session.exec(
                select(CriterionLabel.id, CriterionLabel.criterion_id, CriterionLabel.value).where(
                    col(CriterionLabel.criterion_id).in_(criterion_ids)
                )
            ).all()
        )
        gold_after = sorted(
            session.exec(
                select(GoldLabel.id, GoldLabel.value).where(col(GoldLabel.criterion_id).in_(criterion_ids))
            ).all()
        )
    assert labels_after == labels_before and gold_after == gold_before
    assert criteria_of(engine, new_row.id)[0][1] == 9 and criteria_of(engine, old.id)[0][1] == 10
    assert at.session_state["edit_draft"]["item_id"] == new_row.id
    assert "History (2 versions)" in [e.label for e in at.expander]
    diff = "\n".join(shown(at, "code"))
    assert "- Criterion 1 [+10] (axis: accuracy)" in diff and "+ Criterion 1 [+9] (axis: accuracy)" in diff


def test_curator_writes_an_mcq_item_from_scratch(as_curator, engine):
    """Test that a curator writes a stem, options (adding and removing), a key and an explanation, and saves."""
    at = start_new(open_editor(as_curator), "mcq")
    a, b, c, d = uids(at, "options")
    assert [at.text_input(key=f"edit_options_letter_{uid}").value for uid in (a, b, c, d)] == ["A", "B", "C", "D"]
    at.text_area(key="edit_question").set_value("Which electrolyte disturbance causes peaked T waves?")
    for uid, text in zip((a, b, c, d), ("Hypokalemia", "Hyperkalemia", "Hypocalcemia", "Hypernatremia"), strict=True):
        at.text_input(key=f"edit_options_text_{uid}").set_value(text)
    at = click(at, "edit_add_option")
    e = uids(at, "options")[-1]
    assert at.text_input(key=f"edit_options_letter_{e}").value == "E"
    at.text_input(key=f"edit_options_text_{e}").set_value("Hypomagnesemia")
    at = click(at, f"edit_options_remove_{d}")
    at = click(at, "edit_save")
    assert "Key: choose the correct option." in shown(at, "error")
    assert items_in(engine, "local-00001") == []
    at.selectbox(key="edit_answer_key").set_value("B")
    at.text_area(key="edit_explanation").set_value("Potassium above 5.5 mmol/L peaks the T waves.")
    at.text_input(key="edit_external_id").set_value("ecg-k-1")
    at = click(at, "edit_save")
    assert not at.exception and not at.error
    assert "Created item ecg-k-1 (version 1, draft)." in shown(at, "success")
    (item,) = items_in(engine, "ecg-k-1")
    assert item.kind == "mcq" and item.question == "Which electrolyte disturbance causes peaked T waves?"
    assert item.options == {"A": "Hypokalemia", "B": "Hyperkalemia", "C": "Hypocalcemia", "E": "Hypomagnesemia"}
    assert (item.answer_key, item.explanation) == ("B", "Potassium above 5.5 mmol/L peaks the T waves.")


def test_the_draft_survives_a_visit_to_another_page(as_curator, engine):
    """Test that what was typed stays in the working draft after going to the Items page and back."""
    at = start_new(open_editor(as_curator), "open")
    (turn,) = uids(at, "turns")
    at.text_area(key=f"edit_turns_content_{turn}").set_value("My ankle is swollen after a fall.")
    at = click(at, "edit_add_criterion")
    (criterion,) = uids(at, "criteria")
    fill_criterion(at, criterion, "Suggests the Ottawa ankle rules.", 5, "completeness")
    at.run()
    at = at.switch_page("pages/items.py").run()
    assert [t.value for t in at.title] == ["Items"]
    at = at.switch_page(PAGE).run()
    assert at.text_area(key=f"edit_turns_content_{turn}").value == "My ankle is swollen after a fall."
    assert at.text_area(key=f"edit_criteria_text_{criterion}").value == "Suggests the Ottawa ankle rules."
    assert at.number_input(key=f"edit_criteria_points_{criterion}").value == 5
    assert at.selectbox(key=f"edit_criteria_axis_{criterion}").value == "completeness"


def test_a_physician_cannot_edit_an_item_they_did_not_write(as_physician, engine):
    """Test that a physician who opens a demo item and saves a change is told why, and nothing is stored."""
    (item,) = items_in(engine, "demo-open-02")
    at = open_editor(as_physician, item.id)
    at.text_input(key="edit_tags").set_value("theme:changed")
    at = click(at, "edit_save")
    assert not at.exception
    assert shown(at, "error") == [
        "Physicians can edit only the draft items they wrote; ask a curator to change this one."
    ]
    assert [i.tags for i in items_in(engine, "demo-open-02")] == [item.tags]


def test_the_project_chooser_lists_the_projects_current_items(as_curator, engine):
    """Test that the item select lists "New item" and the project's current items by external id."""
    at = open_editor(as_curator)
    with read_session(engine) as session:
        project = session.exec(select(Project).where(Project.name == DEMO_PROJECT)).one()
        current = session.exec(
            select(Item.id).where(Item.project_id == project.id, Item.is_current == True)  # noqa: E712
        ).all()
    options = at.selectbox(key="edit_pick").options
    assert options[0] == "New item" and len(options) == 1 + len(current)
    assert "demo-open-01 · open" in options and "demo-mcq-01 · mcq" in options


DRAFTED = {
    "criteria": [
        {"criterion": "Advises an urgent ECG for chest pain on exertion.", "points": 8, "axis": "accuracy"},
        {"criterion": "Asks about smoking.", "points": 3, "axis": "completeness"},
        {"criterion": "Says the pain is surely muscular.", "points": -7, "axis": "accuracy"},
    ]
}


def test_drafted_criteria_are_marked_generated_and_count_once_accepted_or_edited(as_curator, engine):
    """Test that criteria drafted by a model appear marked "generated", and only those accepted or edited count."""
    with StubServer(reply=lambda request: json.dumps(DRAFTED)) as server:
        with write_session(engine) as session:
            endpoints.add_endpoint(session, name="local", base_url=server.base_url, model="stub-model")
        at = start_new(open_editor(as_curator), "open")
        (turn,) = uids(at, "turns")
        at.text_area(key=f"edit_turns_content_{turn}").set_value("I get chest pain when I climb stairs.")
        at.selectbox(key="edit_draft_endpoint").set_value("local")
        at = click(at, "edit_draft_criteria")
        assert not at.exception and not at.error
        assert len(server.requests) == 1
        assert "I get chest pain when I climb stairs." in json.dumps(server.requests[0]["json"])
    assert "3 criteria drafted; each counts once you accept or edit it." in shown(at, "success")
    first, second, third = uids(at, "criteria")
    assert [at.text_area(key=f"edit_criteria_text_{uid}").value for uid in (first, second, third)] == [
        c["criterion"] for c in DRAFTED["criteria"]
    ]
    assert shown(at, "caption").count("generated") == 3
    assert [at.checkbox(key=f"edit_criteria_accepted_{uid}").value for uid in (first, second, third)] == [False] * 3
    at.checkbox(key=f"edit_criteria_accepted_{first}").check()
    at.text_area(key=f"edit_criteria_text_{second}").set_value("Asks whether the patient smokes or has diabetes.")
    at = click(at, "edit_save")
    assert not at.exception and not at.error
    (item,) = items_in(engine, "local-00001")
    curator = at.session_state["signed_in_user_id"]
    with read_session(engine) as session:
        stored = session.exec(select(Criterion).where(Criterion.item_id == item.id).order_by(col(Criterion.position)))
        assert [(c.text, c.generated, c.accepted, c.accepted_by) for c in stored] == [
            ("Advises an urgent ECG for chest pain on exertion.", True, True, curator),
            ("Asks whether the patient smokes or has diabetes.", True, True, curator),
            ("Says the pain is surely muscular.", True, False, None),
        ]


def test_a_near_copy_of_a_reference_item_is_flagged_on_save(as_curator, engine, shared_data):
    """Test that saving an MCQ item that nearly copies a MedQA reference item shows the warning and stores a flag."""
    lines = (shared_data / "medqa" / "medqa_test_hard.jsonl").read_bytes().splitlines(keepends=True)[:20]
    with write_session(engine) as session:
        import_items(session, project_name="MedQA", data=b"".join(lines), filename="medqa_test_hard.jsonl")
        reference = session.exec(select(Project).where(Project.name == "MedQA")).one()
        admin = session.exec(select(User).where(User.username == "admin")).one()
        duplicates.set_reference(session, project_id=reference.id, is_reference=True, actor_id=admin.id)
    row = json.loads(lines[0])
    original = current_in(engine, "MedQA")
    at = start_new(open_editor(as_curator), "mcq")
    at.text_area(key="edit_question").set_value(row["question"].replace("junior", "first-year"))
    option_uids = uids(at, "options")
    for uid, letter in zip(option_uids, "ABCD", strict=True):
        at.text_input(key=f"edit_options_text_{uid}").set_value(row["options"][letter])
    assert sorted(row["options"]) == ["A", "B", "C", "D"]
    at.selectbox(key="edit_answer_key").set_value(row["answer_idx"])
    at = click(at, "edit_save")
    assert not at.exception and not at.error
    (item,) = items_in(engine, "local-00001")
    copied = original[row["question"]]
    warnings = shown(at, "warning")
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Nearly copies item {copied} of reference project MedQA (similarity 0.")
    with read_session(engine) as session:
        flags = session.exec(select(DuplicateFlag).where(DuplicateFlag.item_id == item.id)).all()
        matched = session.get(Item, flags[0].match_item_id)
    assert [(f.scope, f.status) for f in flags] == [("reference", "open")]
    assert matched is not None and matched.external_id == copied
    (frame,) = at.dataframe
    table = frame.value
    assert list(table["external id"]) == [copied] and list(table["flag"]) == ["open"]
    at = click(at, "edit_check_duplicates")
    assert len(shown(at, "warning")) == 1
    flag_id = flags[0].id
    at.text_input(key="edit_dismiss_note").set_value("Same trial, different question asked.")
    at = click(at, f"edit_dismiss_{flag_id}")
    assert not at.exception and not at.error
    assert shown(at, "warning") == []
    assert any(c.value.endswith("Dismissed: not a copy.") for c in at.caption)
    with read_session(engine) as session:
        dismissed = session.get(DuplicateFlag, flag_id)
        events = session.exec(select(AuditEvent).where(AuditEvent.entity == "duplicate_flag")).all()
    assert dismissed is not None and (dismissed.status, dismissed.note) == (
        "dismissed",
        "Same trial, different question asked.",
    )
    assert dismissed.decided_by is not None and len(events) == 1


def current_in(engine: Engine, project: str) -> dict[str, str]:
    """Question → external id of a project's current MCQ items."""
    with read_session(engine) as session:
        rows = session.exec(
            select(Item.question, Item.external_id)
            .join(Project, col(Project.id) == Item.project_id)
            .where(Project.name == project, Item.is_current == True)  # noqa: E712
        ).all()
    return {question: external_id for question, external_id in rows}

"""The Grade page through Streamlit's AppTest: lease, blinded view, draft, submit, skip, overlap.

Every test runs the real app (app.py and pages/grade.py) against a fresh SQLite file and checks
what is stored and what the page shows. See tests/conftest.py for why `like_a_running_server`
is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from review import access
from review.importing import import_answers, import_items
from storage.db import read_session, write_session
from storage.models import Annotation, Answer, Assignment, Criterion, CriterionLabel, Item, Model, Project, User

ASSIGNMENT_KEY = "grade_assignment_id"
NEXT = "grade_next"
SAVE = "grade_save"
SUBMIT = "grade_submit"
NOT_YOURS = "This page is not available for your role."
NOTHING_LEFT = "There is nothing left for you to grade in this project."
SMALL_PROJECT = "One answer"
HTML = "<script>alert(1)</script><b>x</b>"


@pytest.fixture
def small_project(engine: Engine, seeded_project: str) -> int:
    """A project with one approved open item (two criteria, one of them negative) and one answer."""
    row = {
        "prompt_id": "one-1",
        "prompt": [{"role": "user", "content": f"I have a headache. {HTML}"}],
        "rubrics": [
            {"criterion": f"Asks about red flags. {HTML}", "points": 5, "tags": ["axis:completeness"]},
            {"criterion": "Prescribes opioids.", "points": -7, "tags": ["axis:accuracy"]},
        ],
        "example_tags": ["theme:test"],
    }
    with write_session(engine) as session:
        import_items(
            session,
            project_name=SMALL_PROJECT,
            data=(json.dumps(row) + "\n").encode(),
            filename="one.jsonl",
            status="approved",
        )
        import_answers(
            session,
            project_name=SMALL_PROJECT,
            data=(
                json.dumps({"external_id": "one-1", "model": "model-small", "answer": f"Rest. {HTML}"}) + "\n"
            ).encode(),
            filename="answers.jsonl",
        )
    with read_session(engine) as session:
        project = session.exec(select(Project).where(Project.name == SMALL_PROJECT)).one()
        assert project.id is not None
        return project.id


# --- helpers -----------------------------------------------------------------------------------


def nodes(at: AppTest) -> Iterator[Any]:
    """Every element and block of the main area and the sidebar, depth first."""
    stack: list[Any] = [at.main, at.sidebar]
    while stack:
        node = stack.pop()
        yield node
        stack.extend((getattr(node, "children", None) or {}).values())


def page_bytes(at: AppTest) -> bytes:
    """Everything the page sent to the browser (all element and block protos, serialized)."""
    return b"\n".join(node.proto.SerializeToString() for node in nodes(at) if getattr(node, "proto", None))


def open_grade(at: AppTest) -> AppTest:
    return at.switch_page("pages/grade.py").run()


def grade_page(app: Any, username: str, project_id: int | None = None) -> AppTest:
    """Sign in and open the Grade page (on the given project, else the first)."""
    at = open_grade(app.sign_in(username))
    assert not at.exception
    if project_id is not None:
        at.selectbox(key="grade_project").set_value(project_id).run()
    return at


def take_next(at: AppTest) -> AppTest:
    return at.button(key=NEXT).click().run()


def click(at: AppTest, key: str) -> AppTest:
    return at.button(key=key).click().run()


def user_id(engine: Engine, username: str) -> int:
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.id is not None
        return user.id


def assignments_of(engine: Engine, username: str) -> list[Assignment]:
    with read_session(engine) as session:
        query = select(Assignment).where(Assignment.user_id == user_id(engine, username)).order_by(col(Assignment.id))
        return list(session.exec(query).all())


def the_assignment(engine: Engine, assignment_id: int) -> Assignment:
    with read_session(engine) as session:
        assignment = session.get(Assignment, assignment_id)
        assert assignment is not None
        return assignment


def criteria_of(engine: Engine, assignment_id: int) -> list[Criterion]:
    item_id = the_assignment(engine, assignment_id).item_id
    with read_session(engine) as session:
        query = select(Criterion).where(Criterion.item_id == item_id).order_by(col(Criterion.position))
        return list(session.exec(query).all())


def annotations_of(engine: Engine, username: str) -> list[Annotation]:
    with read_session(engine) as session:
        return list(session.exec(select(Annotation).where(Annotation.rater_id == user_id(engine, username))).all())


def labels_of(engine: Engine, username: str) -> list[CriterionLabel]:
    with read_session(engine) as session:
        query = select(CriterionLabel).where(CriterionLabel.rater_id == user_id(engine, username))
        return list(session.exec(query.order_by(col(CriterionLabel.criterion_id))).all())


def criterion_key(assignment_id: int, criterion_id: int) -> str:
    return f"grade_c_{assignment_id}_{criterion_id}"


def comment_key(assignment_id: int, criterion_id: int) -> str:
    return f"grade_cc_{assignment_id}_{criterion_id}"


def radio_values(at: AppTest, assignment_id: int, criteria: list[Criterion]) -> list[str | None]:
    return [at.radio(key=criterion_key(assignment_id, c.id or 0)).value for c in criteria]


def choose(at: AppTest, assignment_id: int, values: dict[int, str]) -> None:
    for criterion_id, value in values.items():
        at.radio(key=criterion_key(assignment_id, criterion_id)).set_value(value)


def complete(at: AppTest, engine: Engine, value: str = "met") -> AppTest:
    """Answer every criterion of the open assignment with `value`, safety none, and submit."""
    aid = at.session_state[ASSIGNMENT_KEY]
    choose(at, aid, {c.id or 0: value for c in criteria_of(engine, aid)})
    at.radio(key=f"grade_safety_{aid}").set_value("none")
    return click(at, SUBMIT)


def has_button(at: AppTest, key: str) -> bool:
    return any(button.key == key for button in at.button)


def errors(at: AppTest) -> list[str]:
    return [error.value for error in at.error]


def infos(at: AppTest) -> list[str]:
    return [info.value for info in at.info]


def progress_text(at: AppTest) -> str:
    return next(c.value for c in at.caption if " graded today, " in c.value)


def main_texts(at: AppTest) -> list[str]:
    return [text.value for text in at.main.text]


# --- who may grade --------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["dr.okafor", "curator"])
def test_grade_page_opens_for_annotator_and_curator(app, seeded_project, engine, username):
    """Test that physicians and curators open Grade, see progress and guidelines, and leasing waits for Next."""
    at = grade_page(app, username)
    assert not errors(at)
    assert [t.value for t in at.title] == ["Grade"]
    assert at.selectbox(key="grade_project").value is not None
    assert progress_text(at) == "0 graded today, 0 in all; 24 answers left in project"
    assert any(t.value.startswith("Grade each criterion on what the answer says") for t in at.main.text)
    assert has_button(at, NEXT)
    assert not at.radio
    assert assignments_of(engine, username) == []


def test_admin_has_no_grade_page(app, seeded_project, engine):
    """Test that the admin's navigation has no Grade page and cannot switch to it."""
    assert not access.may_open("admin", "grade")
    at = app.sign_in("admin")
    scripts = [Path(str(info["script_path"])).name for info in at._registered_pages.values() if info.get("script_path")]
    assert scripts == [
        "home.py",
        "items.py",
        "edit_item.py",
        "oversight.py",
        "adjudicate.py",
        "agreement.py",
        "runs.py",
        "judge.py",
        "leaderboard.py",
        "exports.py",
        "admin.py",
    ]
    with pytest.raises(ValueError, match="grade.py"):
        at.switch_page("pages/grade.py")
    assert assignments_of(engine, "admin") == []


def test_grade_page_file_refuses_an_admin(app, seeded_project, engine, pages_folder):
    """Test that pages/grade.py run directly refuses an admin before showing or leasing anything."""
    at = app.sign_in("admin")
    at.run()  # folder mode: every file in pages/ can be run directly
    at = open_grade(at)
    assert not at.exception
    assert errors(at) == [NOT_YOURS]
    assert not at.title and not at.button and not at.radio and not at.selectbox
    assert assignments_of(engine, "admin") == []


# --- a blinded answer ---------------------------------------------------------------------------


def test_next_leases_an_answer_and_shows_it_blinded_as_text(app, seeded_project, engine):
    """Test that Next leases one answer and shows its conversation and answer as text, with no model name."""
    at = take_next(grade_page(app, "dr.okafor"))
    assert not at.exception and not errors(at)
    [assignment] = assignments_of(engine, "dr.okafor")
    assert assignment.status == "leased" and assignment.answer_id is not None
    assert at.session_state[ASSIGNMENT_KEY] == assignment.id
    with read_session(engine) as session:
        answer = session.get(Answer, assignment.answer_id)
        item = session.get(Item, assignment.item_id)
        names = list(session.exec(select(Model.name)).all())
    assert answer is not None and item is not None
    assert "Pediatrics" in item.specialties or "Emergency Medicine" in item.specialties  # routed to his specialties
    messages = [[t.value for t in message.text] for message in at.chat_message]
    assert messages == [[turn["content"]] for turn in item.conversation]
    assert answer.text in main_texts(at)
    assert "Answer to grade" in [h.value for h in at.subheader]
    assert all(answer.text not in m.value for m in at.markdown)
    assert {"model-alpha", "model-beta", "model-gamma"} <= set(names)
    everything = page_bytes(at)
    for name in names:
        assert name.encode() not in everything
    again = at.run()
    assert not has_button(again, NEXT)  # while an answer is open, Next is not offered
    assert len(assignments_of(engine, "dr.okafor")) == 1  # a rerun keeps the same lease
    assert again.session_state[ASSIGNMENT_KEY] == assignment.id


def test_imported_html_is_shown_verbatim_as_text(app, small_project, engine):
    """Test that HTML in the conversation, the answer and a criterion is shown literally, never as markdown."""
    at = take_next(grade_page(app, "dr.okafor", small_project))
    texts = main_texts(at)
    assert f"I have a headache. {HTML}" in texts
    assert f"Rest. {HTML}" in texts
    assert f"+5 · Asks about red flags. {HTML} · axis: completeness" in texts
    for element in (*at.markdown, *at.caption):
        assert "<script>" not in element.value and "<b>" not in element.value


def test_negative_criteria_are_marked_must_not(app, seeded_project, engine):
    """Test that each criterion's label shows its points and axis, and negative ones read 'must not'."""
    at = take_next(grade_page(app, "dr.okafor"))
    aid = at.session_state[ASSIGNMENT_KEY]
    criteria = criteria_of(engine, aid)
    assert any(c.points < 0 for c in criteria) and any(c.points > 0 for c in criteria)
    for criterion in criteria:
        radio = at.radio(key=criterion_key(aid, criterion.id or 0))
        axis = f" · axis: {criterion.axis}" if criterion.axis else ""
        if criterion.points < 0:
            expected = f"−{-criterion.points} · must not · {criterion.text}{axis}"
        else:
            expected = f"+{criterion.points} · {criterion.text}{axis}"
            assert "must not" not in radio.label
        assert radio.label == expected
        assert expected in main_texts(at)  # shown as plain text above the buttons
        assert radio.options == ["met", "not met"]  # the demo project does not allow "unsure"
        assert radio.value is None
    assert at.radio(key=f"grade_safety_{aid}").options == ["none", "minor", "major", "critical"]


# --- drafts and submitting -----------------------------------------------------------------------


def test_incomplete_submit_shows_the_error_and_keeps_a_draft(app, seeded_project, engine):
    """Test that submitting with criteria missing shows why, stores a draft with the choices, and no labels."""
    at = take_next(grade_page(app, "dr.okafor"))
    aid = at.session_state[ASSIGNMENT_KEY]
    first, second, *rest = criteria_of(engine, aid)
    choose(at, aid, {first.id or 0: "met", second.id or 0: "not_met"})
    at.text_input(key=comment_key(aid, first.id or 0)).set_value("Clearly stated.")
    at = click(at, SUBMIT)
    assert not at.exception
    [error] = errors(at)
    assert error.startswith(f"Not submitted: {len(rest)} criteria still need met / not met")
    assert "choose a safety concern" in error and error.endswith("Your draft is saved.")
    [annotation] = annotations_of(engine, "dr.okafor")
    assert annotation.status == "draft"
    assert annotation.draft["labels"] == {str(first.id): "met", str(second.id): "not_met"}
    assert annotation.draft["comments"] == {str(first.id): "Clearly stated."}
    assert annotation.draft["safety"] is None
    assert labels_of(engine, "dr.okafor") == []
    assert the_assignment(engine, aid).status == "leased"
    assert at.session_state[ASSIGNMENT_KEY] == aid
    assert radio_values(at, aid, [first, second]) == ["met", "not_met"]


def test_a_draft_survives_a_new_session(app, seeded_project, engine):
    """Test that a saved draft comes back, same answer and choices preset, after signing in again."""
    at = take_next(grade_page(app, "dr.okafor"))
    aid = at.session_state[ASSIGNMENT_KEY]
    criteria = criteria_of(engine, aid)
    chosen = {c.id or 0: ("met" if n % 2 else "not_met") for n, c in enumerate(criteria[:3])}
    choose(at, aid, chosen)
    at.text_input(key=comment_key(aid, criteria[0].id or 0)).set_value("Half way.")
    at.radio(key=f"grade_safety_{aid}").set_value("minor")
    at.text_area(key=f"grade_comment_{aid}").set_value("Come back to this.")
    at = click(at, SAVE)
    assert not errors(at)
    assert [s.value for s in at.success] == ["Draft saved."]
    [annotation] = annotations_of(engine, "dr.okafor")
    assert annotation.status == "draft"
    assert annotation.draft == {
        "labels": {str(cid): value for cid, value in chosen.items()},
        "comments": {str(criteria[0].id): "Half way."},
        "safety": "minor",
        "comment": "Come back to this.",
    }
    assert annotation.seconds_on_task > 0

    again = grade_page(app, "dr.okafor")  # a brand new browser session
    assert not again.exception
    assert again.session_state[ASSIGNMENT_KEY] == aid
    assert radio_values(again, aid, criteria) == [*chosen.values(), *[None] * (len(criteria) - 3)]
    assert again.text_input(key=comment_key(aid, criteria[0].id or 0)).value == "Half way."
    assert again.radio(key=f"grade_safety_{aid}").value == "minor"
    assert again.text_area(key=f"grade_comment_{aid}").value == "Come back to this."
    assert len(assignments_of(engine, "dr.okafor")) == 1  # resumed, not a new lease


def test_a_complete_submit_stores_every_label(app, seeded_project, engine):
    """Test that a complete submit stores one annotation and one label per criterion, and progress moves."""
    at = take_next(grade_page(app, "dr.okafor"))
    assert progress_text(at) == "0 graded today, 0 in all; 24 answers left in project"
    aid = at.session_state[ASSIGNMENT_KEY]
    criteria = criteria_of(engine, aid)
    values = {c.id or 0: ("not_met" if c.points < 0 else "met") for c in criteria}
    values[criteria[1].id or 0] = "not_met"
    choose(at, aid, values)
    at.text_input(key=comment_key(aid, criteria[1].id or 0)).set_value("  Not mentioned.  ")
    at.radio(key=f"grade_safety_{aid}").set_value("major")
    at.text_area(key=f"grade_comment_{aid}").set_value("Misses the key point.")
    at = click(at, SUBMIT)
    assert not at.exception and not errors(at)
    assert [s.value for s in at.success] == ["Submitted. Press Next answer for the next one."]
    [annotation] = annotations_of(engine, "dr.okafor")
    assert annotation.status == "submitted" and annotation.submitted_at is not None
    assert annotation.safety == "major"
    assert annotation.comment == "Misses the key point."
    assert annotation.draft == {}
    assert annotation.seconds_on_task > 0
    labels = labels_of(engine, "dr.okafor")
    assert {label.criterion_id: label.value for label in labels} == values
    assert len(labels) == len(criteria)
    assert all(label.annotation_id == annotation.id for label in labels)
    assert {label.criterion_id: label.comment for label in labels if label.comment} == {
        criteria[1].id: "Not mentioned."
    }
    assert the_assignment(engine, aid).status == "submitted"
    assert ASSIGNMENT_KEY not in at.session_state
    assert progress_text(at) == "1 graded today, 1 in all; 24 answers left in project"  # overlap 2: still needs one
    assert has_button(at, NEXT) and not at.radio


# --- assignment ------------------------------------------------------------------------------------


def test_two_physicians_grade_an_answer_and_a_third_never_gets_it(app, small_project, engine):
    """Test that with overlap 2 two physicians get the same answer and a third gets nothing, leased or done."""
    okafor = take_next(grade_page(app, "dr.okafor", small_project))
    lindqvist = take_next(grade_page(app, "dr.lindqvist", small_project))
    [first] = assignments_of(engine, "dr.okafor")
    [second] = assignments_of(engine, "dr.lindqvist")
    assert first.answer_id == second.answer_id

    ramos = take_next(grade_page(app, "dr.ramos", small_project))
    assert NOTHING_LEFT in infos(ramos)
    assert assignments_of(engine, "dr.ramos") == []

    okafor = complete(okafor, engine)
    lindqvist = complete(lindqvist, engine, value="not_met")
    assert not errors(okafor) and not errors(lindqvist)
    with read_session(engine) as session:
        submitted = session.exec(
            select(Annotation).where(Annotation.answer_id == first.answer_id, Annotation.status == "submitted")
        ).all()
        answer = session.get(Answer, first.answer_id)
    assert len(submitted) == 2 and answer is not None and answer.gradings == 2
    assert progress_text(lindqvist) == "1 graded today, 1 in all; 0 answers left in project"

    ramos = take_next(ramos)
    assert NOTHING_LEFT in infos(ramos)
    assert assignments_of(engine, "dr.ramos") == []
    assert annotations_of(engine, "dr.ramos") == []


def test_skip_needs_a_reason_and_the_answer_is_not_offered_again(app, small_project, engine):
    """Test that skipping without a reason is refused, and a skipped answer is never offered to them again."""
    at = take_next(grade_page(app, "dr.okafor", small_project))
    aid = at.session_state[ASSIGNMENT_KEY]
    at = click(at, "grade_skip")
    assert errors(at) == ["Say why you skip this answer."]
    assert the_assignment(engine, aid).status == "leased"

    at.text_input(key=f"grade_skip_reason_{aid}").set_value("  Outside my expertise.  ")
    at = click(at, "grade_skip")
    assert not errors(at)
    assert [s.value for s in at.success] == ["Skipped. It will not be offered to you again."]
    skipped = the_assignment(engine, aid)
    assert skipped.status == "skipped" and skipped.skip_reason == "Outside my expertise."
    assert ASSIGNMENT_KEY not in at.session_state

    at = take_next(at)
    assert NOTHING_LEFT in infos(at)
    assert len(assignments_of(engine, "dr.okafor")) == 1
    assert annotations_of(engine, "dr.okafor") == []
    other = take_next(grade_page(app, "dr.lindqvist", small_project))  # back in the pool for others
    assert [a.answer_id for a in assignments_of(engine, "dr.lindqvist")] == [skipped.answer_id]
    assert other.session_state[ASSIGNMENT_KEY] != aid


def test_choices_are_not_carried_into_the_next_answer(app, seeded_project, engine):
    """Test that the next answer to the same item starts with empty radios, safety and comments."""
    at = take_next(grade_page(app, "dr.okafor"))
    first = at.session_state[ASSIGNMENT_KEY]
    criteria = criteria_of(engine, first)
    choose(at, first, {c.id or 0: "met" for c in criteria})
    at.text_input(key=comment_key(first, criteria[0].id or 0)).set_value("Good.")
    at.radio(key=f"grade_safety_{first}").set_value("critical")
    at.text_area(key=f"grade_comment_{first}").set_value("First answer.")
    at = click(at, SUBMIT)
    assert not errors(at)

    at = take_next(at)
    second = at.session_state[ASSIGNMENT_KEY]
    assert second != first
    assert the_assignment(engine, second).item_id == the_assignment(engine, first).item_id  # same rubric
    assert the_assignment(engine, second).answer_id != the_assignment(engine, first).answer_id
    assert radio_values(at, second, criteria) == [None] * len(criteria)
    assert all(at.text_input(key=comment_key(second, c.id or 0)).value == "" for c in criteria)
    assert at.radio(key=f"grade_safety_{second}").value is None
    assert at.text_area(key=f"grade_comment_{second}").value == ""

    at = click(at, SAVE)  # saving the untouched form stores an empty draft, nothing from the first answer
    drafts = [a for a in annotations_of(engine, "dr.okafor") if a.status == "draft"]
    assert [d.draft for d in drafts] == [{"labels": {}, "comments": {}, "safety": None, "comment": ""}]


def test_each_change_saves_the_draft_without_pressing_a_button(app, seeded_project, engine):
    """Test that choosing a value or typing a comment stores the draft at once (a closed tab loses nothing)."""
    at = take_next(grade_page(app, "dr.okafor"))
    aid = at.session_state[ASSIGNMENT_KEY]
    first, second = criteria_of(engine, aid)[:2]
    at.radio(key=criterion_key(aid, first.id or 0)).set_value("not_met").run()
    assert not at.exception
    (draft,) = annotations_of(engine, "dr.okafor")
    assert draft.status == "draft" and draft.draft["labels"] == {str(first.id): "not_met"}
    at.text_input(key=comment_key(aid, second.id or 0)).input("unclear dosing").run()
    at.radio(key=f"grade_safety_{aid}").set_value("minor").run()
    (draft,) = annotations_of(engine, "dr.okafor")
    assert draft.draft["comments"] == {str(second.id): "unclear dosing"} and draft.draft["safety"] == "minor"
    assert draft.seconds_on_task > 0
    assert labels_of(engine, "dr.okafor") == []  # a draft, not a submission
    fresh = grade_page(app, "dr.okafor")  # a new browser session: the same answer, as left
    assert fresh.session_state[ASSIGNMENT_KEY] == aid
    assert fresh.radio(key=criterion_key(aid, first.id or 0)).value == "not_met"
    assert fresh.radio(key=f"grade_safety_{aid}").value == "minor"

"""Agreement and scores filtered to an item version: labels stay with the version they graded, and each
version's figures count only its own labels."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from review import agreement_report, scores
from storage.db import read_session, write_session
from storage.models import Annotation, Answer, Criterion, CriterionLabel, GoldLabel, Item, Model, Project, User

CONVERSATION = [{"role": "user", "content": "I have had a fever for three days. Should I see a doctor?"}]


def _version(session: Any, project_id: int, number: int, current: bool, previous: int | None) -> tuple[int, list[int]]:
    item = Item(
        project_id=project_id,
        external_id="fever-advice",
        kind="open",
        version=number,
        is_current=current,
        status="approved",
        content_hash=f"hash-{number}",
        conversation=CONVERSATION,
        previous_version_id=previous,
    )
    session.add(item)
    session.flush()
    criteria = []
    for position, (text, points) in enumerate([("Advises seeing a doctor", 5), ("Asks about other symptoms", 3)]):
        criterion = Criterion(
            item_id=item.id, position=position, text=f"{text} (v{number})", points=points, tags=["axis:accuracy"]
        )
        session.add(criterion)
        session.flush()
        criteria.append(criterion.id)
    return item.id, criteria


def _grade(session: Any, answer_id: int, rater_id: int, values: dict[int, str]) -> None:
    annotation = Annotation(answer_id=answer_id, rater_id=rater_id, status="submitted")
    session.add(annotation)
    session.flush()
    for criterion_id, value in values.items():
        session.add(
            CriterionLabel(
                annotation_id=annotation.id,
                answer_id=answer_id,
                criterion_id=criterion_id,
                rater_id=rater_id,
                value=value,
            )
        )


@pytest.fixture
def two_versions(engine: Engine) -> dict[str, Any]:
    """One item in two versions: on version 1 two physicians disagree on one criterion and gold says the answer
    met both criteria; on version 2 they agree everywhere and gold says it met only the first."""
    with write_session(engine) as session:
        project = Project(name="Versions")
        session.add(project)
        session.flush()
        raters = []
        for name in ("dr.a", "dr.b"):
            user = User(username=name)
            session.add(user)
            session.flush()
            raters.append(user.id)
        model = Model(name="model-x")
        session.add(model)
        session.flush()
        old_id, old_criteria = _version(session, project.id, 1, False, None)
        new_id, new_criteria = _version(session, project.id, 2, True, old_id)
        answers = []
        for item_id in (old_id, new_id):
            answer = Answer(item_id=item_id, model_id=model.id, text="See a doctor if it lasts.", content_hash="a")
            session.add(answer)
            session.flush()
            answers.append(answer.id)
        _grade(session, answers[0], raters[0], {old_criteria[0]: "met", old_criteria[1]: "met"})
        _grade(session, answers[0], raters[1], {old_criteria[0]: "met", old_criteria[1]: "not_met"})
        _grade(session, answers[1], raters[0], {new_criteria[0]: "met", new_criteria[1]: "not_met"})
        _grade(session, answers[1], raters[1], {new_criteria[0]: "met", new_criteria[1]: "not_met"})
        for answer_id, criteria, values in (
            (answers[0], old_criteria, ("met", "met")),
            (answers[1], new_criteria, ("met", "not_met")),
        ):
            for criterion_id, value in zip(criteria, values, strict=True):
                session.add(
                    GoldLabel(answer_id=answer_id, criterion_id=criterion_id, value=value, method="adjudicated")
                )
        session.commit()
        return {"project_id": project.id, "old_answer": answers[0], "new_answer": answers[1]}


def test_agreement_filters_to_current_or_numbered_item_versions(engine, two_versions):
    """Test that agreement counts every version's units by default and only the chosen version's units when
    filtered to the current version or to version 1."""
    project_id = two_versions["project_id"]
    with read_session(engine) as session:
        everything = agreement_report.load_labels(session, project_id=project_id)
        current = agreement_report.load_labels(
            session, project_id=project_id, filters=agreement_report.Filters(item_version="current")
        )
        first = agreement_report.load_labels(
            session, project_id=project_id, filters=agreement_report.Filters(item_version=1)
        )
        page = agreement_report.page_figures(
            session, project_id=project_id, filters=agreement_report.Filters(item_version=1)
        )
    assert (everything.labels.units, current.labels.units, first.labels.units) == (4, 2, 2)
    assert agreement_report.agreement.summary(current.labels).as_dict()["percent_agreement"]["value"] == 1.0
    assert agreement_report.agreement.summary(first.labels).as_dict()["percent_agreement"]["value"] == 0.5
    assert page.item_versions == [1, 2]
    assert page.overall["units"] == 2 and page.overall["percent_agreement"]["value"] == 0.5


def test_scores_count_the_current_version_or_the_version_asked_for(engine, two_versions):
    """Test that a model's score comes from the current version's gold by default (5 of 8 points) and from
    version 1's gold when asked (8 of 8), each traced to that version's answer."""
    project_id = two_versions["project_id"]
    with read_session(engine) as session:
        current = scores.model_scores(session, project_id=project_id, resamples=10)
        first = scores.model_scores(session, project_id=project_id, resamples=10, item_version=1)
        trace_current = scores.answer_trace(session, project_id=project_id, model="model-x")
        trace_first = scores.answer_trace(session, project_id=project_id, model="model-x", item_version=1)
        versions = scores.item_versions(session, project_id=project_id)
    assert versions == [1, 2]
    assert current[0].overall.value == pytest.approx(5 / 8, abs=1e-12)
    assert first[0].overall.value == pytest.approx(1.0, abs=1e-12)
    assert [t.answer_id for t in trace_current] == [two_versions["new_answer"]]
    assert [t.answer_id for t in trace_first] == [two_versions["old_answer"]]


def test_leaderboard_and_agreement_pages_choose_the_item_version(app, engine, seeded_project, two_versions):
    """Test that on the Leaderboard, choosing "Version 1" shows version 1's score (1.0000 instead of the current
    0.6250), and on Agreement, choosing "Version 1" shows its 2 units at 0.500 percent agreement."""
    project_id = two_versions["project_id"]
    at = app.sign_in("curator")
    at.switch_page("pages/leaderboard.py").run()
    at.selectbox(key="lb_project").set_value(project_id).run()
    assert not at.exception

    def scores_shown() -> list[str]:
        frame = next(f.value for f in at.dataframe if {"model", "score"} <= set(f.value.columns))
        return list(frame["score"])

    assert at.selectbox(key="lb_item_version").options == ["Current versions", "Version 1", "Version 2"]
    assert scores_shown() == ["0.6250"]
    at.selectbox(key="lb_item_version").set_value("Version 1").run()
    assert not at.exception
    assert scores_shown() == ["1.0000"]

    at.switch_page("pages/agreement.py").run()
    at.selectbox(key="agr_project").set_value(project_id).run()
    assert "4 units" in at.caption[0].value
    at.selectbox(key="agr_item_version").set_value("Version 1").run()
    assert not at.exception
    assert at.caption[0].value.startswith("2 units (answer × criterion), 2 raters, 4 labels")
    percent = next(m for m in at.metric if m.label == "Percent agreement")
    assert percent.value == "0.500"

"""The item editor's use cases on real SQLite: validation, create, edit in place, new versions when labels
exist, criterion lineage, generated criteria, permissions, audit and history."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from review import editing
from review.demo import DEMO_PROJECT
from review.editing import CriterionDraft, EditError, ItemDraft, Turn
from review.formats import item_content_hash
from review.importing import import_items
from storage.db import read_session, write_session
from storage.models import (
    Annotation,
    Answer,
    AuditEvent,
    Criterion,
    CriterionLabel,
    GoldLabel,
    Item,
    ItemReview,
    Model,
    Project,
    User,
)
from tests.labelled_demo import physicians_and_gold

# --- helpers -----------------------------------------------------------------------------------------------


def user_id(engine: Engine, username: str) -> int:
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.id is not None
        return user.id


def project_id(engine: Engine, name: str = DEMO_PROJECT) -> int:
    with read_session(engine) as session:
        project = session.exec(select(Project).where(Project.name == name)).one()
        assert project.id is not None
        return project.id


def current(engine: Engine, external_id: str, project: str = DEMO_PROJECT) -> Item:
    with read_session(engine) as session:
        return session.exec(
            select(Item).where(
                Item.project_id == project_id(engine, project),
                Item.external_id == external_id,
                Item.is_current == True,  # noqa: E712
            )
        ).one()


def criteria_of(engine: Engine, item_id: int) -> list[Criterion]:
    with read_session(engine) as session:
        return list(
            session.exec(select(Criterion).where(Criterion.item_id == item_id).order_by(col(Criterion.position))).all()
        )


def count(engine: Engine, table: Any) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def audit_rows(engine: Engine, action: str) -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def draft_of(engine: Engine, item_id: int) -> ItemDraft:
    with read_session(engine) as session:
        return editing.draft_of(session, item_id=item_id)


def save(engine: Engine, draft: ItemDraft, username: str = "curator", role: str = "curator") -> editing.SaveResult:
    with write_session(engine) as session:
        return editing.save_item(session, draft, actor_id=user_id(engine, username), role=role)


def open_draft(project: int, **changes: Any) -> ItemDraft:
    draft = ItemDraft(
        project_id=project,
        item_id=None,
        external_id="",
        kind="open",
        specialties=["Cardiology"],
        dimension="care",
        tags=["theme:test"],
        conversation=[Turn("user", "I get chest pain when I climb stairs. Should I worry?")],
        criteria=[
            CriterionDraft(None, "Advises prompt medical evaluation for exertional chest pain.", 8, "accuracy", []),
            CriterionDraft(None, "Asks about associated symptoms such as breathlessness.", 4, "completeness", []),
            CriterionDraft(None, "Says the pain is certainly harmless.", -6, "accuracy", ["level:example"]),
        ],
    )
    return replace(draft, **changes)


def mcq_draft(project: int, **changes: Any) -> ItemDraft:
    draft = ItemDraft(
        project_id=project,
        item_id=None,
        external_id="",
        kind="mcq",
        question="Which drug reverses heparin?",
        options=[("A", "Vitamin K"), ("B", "Protamine sulfate"), ("C", "Idarucizumab"), ("D", "Andexanet alfa")],
        answer_key="B",
        explanation="Protamine binds heparin.",
    )
    return replace(draft, **changes)


def labelled_open_item(engine: Engine) -> Item:
    """The demo's first open item, after two imported physicians labelled its answers and gold followed."""
    physicians_and_gold(engine, DEMO_PROJECT)
    return current(engine, "demo-open-01")


def version_counts(engine: Engine, item_id: int) -> dict[str, Any]:
    """What hangs off one version: its criteria, labels, gold and answers, as stored."""
    with read_session(engine) as session:
        criterion_ids = list(session.exec(select(Criterion.id).where(Criterion.item_id == item_id)).all())
        answers = session.exec(select(Answer).where(Answer.item_id == item_id).order_by(col(Answer.id))).all()
        labels = session.exec(
            select(CriterionLabel.id, CriterionLabel.value).where(col(CriterionLabel.criterion_id).in_(criterion_ids))
        ).all()
        gold = session.exec(
            select(GoldLabel.id, GoldLabel.value, GoldLabel.is_current).where(
                col(GoldLabel.criterion_id).in_(criterion_ids)
            )
        ).all()
        return {
            "criteria": sorted(criterion_ids),
            "answers": [(a.id, a.model_id, a.text, a.content_hash, a.gradings) for a in answers],
            "labels": sorted(labels),
            "gold": sorted(gold),
        }


# --- validation ---------------------------------------------------------------------------------------------


def test_check_draft_names_every_problem_of_a_conversation_and_rubric():
    """Test that check_draft names each turn and criterion that is wrong, and what is wrong with it."""
    draft = open_draft(
        1,
        conversation=[Turn("doctor", "Hello"), Turn("user", "   "), Turn("assistant", "How can I help?")],
        criteria=[
            CriterionDraft(None, "", 5, "accuracy", []),
            CriterionDraft(None, "Zero points.", 0, None, []),
            CriterionDraft(None, "Too many.", 11, None, []),
            CriterionDraft(None, "A fraction.", 2.5, None, []),  # type: ignore[arg-type]
            CriterionDraft(None, "Odd axis.", -3, "bedside_manner", []),
            CriterionDraft(None, "Axis as tag.", -2, None, ["axis:accuracy"]),
        ],
    )
    problems = editing.check_draft(draft)
    assert problems == [
        "Turn 1: the role must be user, assistant or system, not 'doctor'.",
        "Turn 2: the text is empty.",
        "Conversation: it must end with a user turn (turn 3 is assistant).",
        "Criterion 1: the text is empty.",
        "Criterion 2: points must be a whole number from -10 to 10 other than 0, not 0.",
        "Criterion 3: points must be a whole number from -10 to 10 other than 0, not 11.",
        "Criterion 4: points must be a whole number from -10 to 10 other than 0, not 2.5.",
        "Criterion 5: the axis must be one of accuracy, completeness, context_awareness, communication_quality, "
        "instruction_following or empty, not 'bedside_manner'.",
        "Criterion 6: choose the axis in its own field, not as the tag 'axis:accuracy'.",
    ]


def test_check_draft_requires_a_positive_criterion_that_counts():
    """Test that an open item needs a criterion with positive points, and an unaccepted generated one does not count."""
    none_positive = open_draft(1, criteria=[CriterionDraft(None, "Says it is harmless.", -5, None, [])])
    assert editing.check_draft(none_positive) == [
        "Rubric: an open item needs at least one criterion with positive points."
    ]
    assert editing.check_draft(open_draft(1, criteria=[])) == [
        "Rubric: an open item needs at least one criterion with positive points."
    ]
    only_generated = open_draft(
        1, criteria=[CriterionDraft(None, "Advises evaluation.", 5, None, [], generated=True, accepted=False)]
    )
    assert editing.check_draft(only_generated) == [
        "Rubric: an open item needs at least one criterion with positive points "
        "(generated criteria count once accepted)."
    ]
    accepted = open_draft(
        1, criteria=[CriterionDraft(None, "Advises evaluation.", 5, None, [], generated=True, accepted=True)]
    )
    assert editing.check_draft(accepted) == []
    assert editing.check_draft(open_draft(1)) == []


def test_check_draft_names_every_problem_of_an_mcq_item():
    """Test that check_draft names the empty stem, a repeated letter, an empty option and a key not among options."""
    draft = mcq_draft(
        1,
        question="  ",
        options=[("A", "Vitamin K"), ("A", "Protamine"), ("c", "Idarucizumab"), ("D", "")],
        answer_key="E",
    )
    assert editing.check_draft(draft) == [
        "Question: the stem is empty.",
        "Option 2: the letter A is used twice.",
        "Option 3: the letter must be one capital letter A-Z, not 'c'.",
        "Option 4: the text is empty.",
        "Key: 'E' is not one of the options (A, D).",
    ]
    one_option = mcq_draft(1, options=[("A", "Vitamin K")], answer_key="")
    assert editing.check_draft(one_option) == [
        "Options: a question needs at least 2 options.",
        "Key: choose the correct option.",
    ]
    assert editing.check_draft(mcq_draft(1)) == []


def test_check_draft_checks_id_dimension_and_specialties(engine, seeded_project):
    """Test that the external id's length and uniqueness, the dimension and the specialties are checked."""
    project = project_id(engine)
    draft = open_draft(project, external_id="x" * 201, dimension="wellness", specialties=["Cardiology", "Astrology"])
    with read_session(engine) as session:
        assert editing.check_draft(draft, session) == [
            "External id: at most 200 characters (this one has 201).",
            "Dimension: must be one of knowledge, safety-ethics, record-understanding, patient-service, care, "
            "not 'wellness'.",
            "Specialty 'Astrology' is not in the taxonomy.",
        ]
        taken = open_draft(project, external_id="demo-open-02")
        assert editing.check_draft(taken, session) == [
            "External id: 'demo-open-02' is already used by another item in this project."
        ]
        renamed = replace(editing.draft_of(session, item_id=current(engine, "demo-open-01").id), external_id="new")
        assert editing.check_draft(renamed, session) == ["External id: a saved item keeps its id ('demo-open-01')."]
        retyped = replace(editing.draft_of(session, item_id=current(engine, "demo-open-01").id), kind="mcq")
        assert "Kind: a saved item keeps its kind (open)." in editing.check_draft(retyped, session)


def test_new_draft_has_an_empty_user_turn_or_four_options():
    """Test that a new open draft starts with one empty user turn and a new MCQ draft with options A to D."""
    opened = editing.new_draft(project_id=3, kind="open")
    assert opened.conversation == [Turn("user", "")] and opened.criteria == [] and opened.item_id is None
    choice = editing.new_draft(project_id=3, kind="mcq")
    assert choice.options == [("A", ""), ("B", ""), ("C", ""), ("D", "")] and choice.question == ""
    with pytest.raises(EditError):
        editing.new_draft(project_id=3, kind="essay")


def test_invalid_draft_writes_nothing(engine, seeded_project):
    """Test that a draft with problems raises EditError listing them all and writes no row at all."""
    before = [count(engine, table) for table in (Item, Criterion, AuditEvent)]
    draft = open_draft(project_id(engine), criteria=[CriterionDraft(None, "", 0, None, [])])
    with pytest.raises(EditError) as raised:
        save(engine, draft)
    assert raised.value.problems == [
        "Criterion 1: the text is empty.",
        "Criterion 1: points must be a whole number from -10 to 10 other than 0, not 0.",
        "Rubric: an open item needs at least one criterion with positive points.",
    ]
    assert [count(engine, table) for table in (Item, Criterion, AuditEvent)] == before


# --- creating -----------------------------------------------------------------------------------------------


def test_save_creates_a_draft_version_one_with_a_generated_id(engine, seeded_project):
    """Test that a new item is stored as version 1, a draft, with local ids, axis tags and the import's hash."""
    project = project_id(engine)
    first = save(engine, open_draft(project, change_note="Written for the cardiology set."))
    second = save(engine, mcq_draft(project))
    assert (first.outcome, first.version, first.external_id) == ("created", 1, "local-00001")
    assert (second.outcome, second.external_id) == ("created", "local-00002")
    item = current(engine, "local-00001")
    assert item.id == first.item_id
    assert (item.status, item.version, item.is_current, item.kind) == ("draft", 1, True, "open")
    assert item.created_by == user_id(engine, "curator") and item.change_note == "Written for the cardiology set."
    assert item.specialties == ["Cardiology"] and item.dimension == "care" and item.tags == ["theme:test"]
    stored = criteria_of(engine, first.item_id)
    assert [(c.position, c.text, c.points, c.axis, c.tags) for c in stored] == [
        (0, "Advises prompt medical evaluation for exertional chest pain.", 8, "accuracy", ["axis:accuracy"]),
        (1, "Asks about associated symptoms such as breathlessness.", 4, "completeness", ["axis:completeness"]),
        (2, "Says the pain is certainly harmless.", -6, "accuracy", ["level:example", "axis:accuracy"]),
    ]
    assert all(c.accepted and not c.generated and c.previous_criterion_id is None for c in stored)
    assert item.content_hash == item_content_hash(
        kind="open",
        conversation=[{"role": "user", "content": "I get chest pain when I climb stairs. Should I worry?"}],
        criteria=[(c.text, c.points, c.tags) for c in stored],
        question=None,
        options={},
        answer_key=None,
        explanation=None,
        meta_info=None,
        specialties=["Cardiology"],
        dimension="care",
        tags=["theme:test"],
        extra={},
    )
    choice = current(engine, "local-00002")
    assert choice.options == {"A": "Vitamin K", "B": "Protamine sulfate", "C": "Idarucizumab", "D": "Andexanet alfa"}
    assert (choice.question, choice.answer_key, choice.explanation) == (
        "Which drug reverses heparin?",
        "B",
        "Protamine binds heparin.",
    )
    assert criteria_of(engine, second.item_id) == []
    created = audit_rows(engine, "item.created")
    assert [(e.entity, e.entity_id, e.actor_id) for e in created] == [
        ("item", first.item_id, user_id(engine, "curator")),
        ("item", second.item_id, user_id(engine, "curator")),
    ]
    assert created[0].detail["external_id"] == "local-00001"
    assert created[0].detail["after"]["points"] == [8, 4, -6]


def test_save_keeps_a_given_external_id(engine, seeded_project):
    """Test that an external id typed by the curator is kept (trimmed) and then refused for a second item."""
    project = project_id(engine)
    assert save(engine, open_draft(project, external_id="  cardio-7 ")).external_id == "cardio-7"
    with pytest.raises(EditError) as raised:
        save(engine, open_draft(project, external_id="cardio-7"))
    assert raised.value.problems == ["External id: 'cardio-7' is already used by another item in this project."]


IMPORTED = [
    ("healthbench/hard_sample_30.jsonl", None),
    ("healthbench/context_seeking_consensus_hard_104.jsonl", 30),
    ("medqa/medqa_test_hard.jsonl", 40),
]


@pytest.mark.parametrize(("path", "rows"), IMPORTED, ids=[p for p, _ in IMPORTED])
def test_imported_items_opened_and_saved_unchanged_stay_unchanged(engine, seeded_project, shared_data, path, rows):
    """Test that opening any imported HealthBench or MedQA row and saving it without a change writes nothing."""
    lines = (shared_data / path).read_bytes().splitlines(keepends=True)
    data = b"".join(lines if rows is None else lines[:rows])
    with write_session(engine) as session:
        import_items(session, project_name="Public", data=data, filename=Path(path).name)
    with read_session(engine) as session:
        ids = [
            i.id
            for i in session.exec(select(Item).where(Item.project_id == project_id(engine, "Public"))).all()
            if i.id is not None
        ]
    before = (count(engine, Item), count(engine, Criterion), count(engine, AuditEvent))
    outcomes = {save(engine, draft_of(engine, item_id)).outcome for item_id in ids}
    assert outcomes == {"unchanged"}
    assert (count(engine, Item), count(engine, Criterion), count(engine, AuditEvent)) == before


# --- editing in place ---------------------------------------------------------------------------------------


def test_edit_without_labels_changes_the_version_in_place(engine, seeded_project):
    """Test that an ungraded item is edited in place: criteria updated by id, added, deleted, renumbered."""
    project = project_id(engine)
    created = save(engine, open_draft(project))
    draft = draft_of(engine, created.item_id)
    first, second, third = draft.criteria
    draft.criteria = [
        replace(third, points=-8),
        CriterionDraft(None, "Mentions calling emergency services if pain occurs at rest.", 6, None, ["x:y"]),
        replace(first, text="Advises seeing a doctor soon for chest pain on exertion."),
    ]
    draft.conversation.append(Turn("assistant", "How long has this been happening?"))
    draft.conversation.append(Turn("user", "About two weeks."))
    result = save(engine, draft)
    assert (result.outcome, result.item_id, result.version) == ("edited", created.item_id, 1)
    stored = criteria_of(engine, created.item_id)
    assert [(c.id, c.position, c.text, c.points, c.tags) for c in stored] == [
        (third.criterion_id, 0, "Says the pain is certainly harmless.", -8, ["level:example", "axis:accuracy"]),
        (stored[1].id, 1, "Mentions calling emergency services if pain occurs at rest.", 6, ["x:y"]),
        (first.criterion_id, 2, "Advises seeing a doctor soon for chest pain on exertion.", 8, ["axis:accuracy"]),
    ]
    assert stored[1].id not in (first.criterion_id, second.criterion_id, third.criterion_id)
    with read_session(engine) as session:
        assert session.get(Criterion, second.criterion_id) is None
    item = current(engine, "local-00001")
    assert item.id == created.item_id and item.version == 1 and count(engine, Item) == 13 + 1
    assert [turn["role"] for turn in item.conversation] == ["user", "assistant", "user"]
    assert item.content_hash == item_content_hash(
        kind="open",
        conversation=item.conversation,
        criteria=[(c.text, c.points, c.tags) for c in stored],
        question=None,
        options={},
        answer_key=None,
        explanation=None,
        meta_info=None,
        specialties=item.specialties,
        dimension=item.dimension,
        tags=item.tags,
        extra={},
    )
    edited = audit_rows(engine, "item.edited")
    assert len(edited) == 1 and edited[0].entity_id == created.item_id
    assert edited[0].detail["before"]["points"] == [8, 4, -6]
    assert edited[0].detail["after"]["points"] == [-8, 6, 8]
    assert edited[0].detail["criteria_removed"] == [second.criterion_id]
    assert "+ Turn 3 (user): About two weeks." in edited[0].detail["diff"]


def test_prompt_change_with_ungraded_answers_makes_a_new_version_without_copies(engine, seeded_project):
    """Test that changing the prompt of an item whose answers nobody graded keeps those answers on the old version."""
    item = current(engine, "demo-open-02")
    before = version_counts(engine, item.id)
    assert before["answers"] and not before["labels"]
    draft = draft_of(engine, item.id)
    draft.conversation[-1] = Turn("user", draft.conversation[-1].content + " I am 70 years old.")
    result = save(engine, draft)
    assert (result.outcome, result.version, result.answers_copied) == ("new_version", 2, 0)
    assert version_counts(engine, item.id) == before
    assert version_counts(engine, result.item_id)["answers"] == []


# --- new versions -------------------------------------------------------------------------------------------


def test_edit_of_a_labelled_item_makes_a_new_version_and_keeps_the_old_one_intact(engine, seeded_project):
    """Test that editing a graded item adds version 2 with copied answers and leaves labels, gold and answers on 1."""
    old = labelled_open_item(engine)
    before = version_counts(engine, old.id)
    assert before["labels"] and before["gold"] and before["answers"]
    draft = draft_of(engine, old.id)
    kept, changed, *rest = draft.criteria
    draft.criteria = [kept, replace(changed, points=7), *rest[:-1], CriterionDraft(None, "New point.", 2, None, [])]
    draft.change_note = "Weighted the infection criterion higher."
    result = save(engine, draft)
    assert (result.outcome, result.version, result.external_id) == ("new_version", 2, "demo-open-01")
    assert result.labels_kept == len(before["labels"])
    assert result.answers_copied == len(before["answers"])
    assert result.sentence() == (
        f"Saved as version 2: the old version keeps its {len(before['labels'])} labels; "
        f"{len(before['answers'])} answers copied to grade again."
    )
    assert version_counts(engine, old.id) == before
    with read_session(engine) as session:
        stale = session.get(Item, old.id)
        assert stale is not None and not stale.is_current and stale.version == 1
        assert stale.content_hash == old.content_hash and stale.status == old.status
    new = current(engine, "demo-open-01")
    assert new.id == result.item_id and new.version == 2 and new.previous_version_id == old.id
    assert new.status == old.status == "approved" and new.change_note == "Weighted the infection criterion higher."
    assert new.created_by == user_id(engine, "curator")
    copies = version_counts(engine, new.id)
    assert copies["labels"] == [] and copies["gold"] == []
    assert [(m, text, digest, gradings) for _, m, text, digest, gradings in copies["answers"]] == [
        (m, text, digest, 0) for _, m, text, digest, _ in before["answers"]
    ]
    new_criteria = criteria_of(engine, new.id)
    old_criteria = criteria_of(engine, old.id)
    assert [c.previous_criterion_id for c in new_criteria] == [c.id for c in old_criteria[:-1]] + [None]
    assert [c.points for c in new_criteria] == [old_criteria[0].points, 7, *[c.points for c in old_criteria[2:-1]], 2]
    assert [c.points for c in old_criteria][1] == 6
    events = audit_rows(engine, "item.new_version")
    assert len(events) == 1 and events[0].entity_id == new.id
    assert events[0].detail["previous_item_id"] == old.id and events[0].detail["answers_copied"] == 3
    assert events[0].detail["labels_kept"] == len(before["labels"])


def test_prompt_change_of_a_labelled_item_copies_no_answers(engine, seeded_project):
    """Test that a new version whose conversation changed gets no copies of the old version's answers."""
    old = labelled_open_item(engine)
    draft = draft_of(engine, old.id)
    draft.conversation = [Turn("user", "My baby is 6 weeks old with a fever of 38.5. What should I do?")]
    result = save(engine, draft)
    assert (result.outcome, result.answers_copied) == ("new_version", 0)
    assert version_counts(engine, result.item_id)["answers"] == []
    assert len(version_counts(engine, old.id)["answers"]) == 3


def test_only_the_current_version_can_be_edited(engine, seeded_project):
    """Test that saving a draft of a replaced version is refused with a sentence."""
    old = labelled_open_item(engine)
    draft = draft_of(engine, old.id)
    draft.tags = [*draft.tags, "theme:fever"]
    save(engine, draft)
    with pytest.raises(EditError) as raised:
        save(engine, draft)
    assert raised.value.problems == [
        "Version 1 of item demo-open-01 is not the current one; open the current version to edit it."
    ]


def test_key_change_of_a_reviewed_mcq_item_rescores_the_copied_answers(engine, seeded_project):
    """Test that an item review makes an MCQ edit a new version and the copied answers are scored on the new key."""
    project = project_id(engine)
    created = save(engine, mcq_draft(project))
    with write_session(engine) as session:
        model = Model(name="model-mcq")
        session.add(model)
        session.flush()
        for choice in ("B", "C", None):
            session.add(
                Answer(
                    item_id=created.item_id,
                    model_id=model.id,
                    text=f"Answer: {choice}",
                    source="generated",
                    content_hash=f"h{choice}",
                    mcq_choice=choice,
                    mcq_correct=None if choice is None else choice == "B",
                    shuffle_seed=1,
                    option_order=["A", "B", "C", "D"],
                )
            )
        session.add(ItemReview(item_id=created.item_id, rater_id=user_id(engine, "dr.okafor"), status="submitted"))
    draft = draft_of(engine, created.item_id)
    draft.answer_key = "C"
    result = save(engine, draft)
    assert (result.outcome, result.answers_copied, result.labels_kept, result.reviews_kept) == ("new_version", 3, 0, 1)
    with read_session(engine) as session:
        old = session.exec(select(Answer.mcq_choice, Answer.mcq_correct).where(Answer.item_id == created.item_id))
        new = session.exec(select(Answer.mcq_choice, Answer.mcq_correct).where(Answer.item_id == result.item_id))
        assert sorted(old.all(), key=str) == sorted([("B", True), ("C", False), (None, None)], key=str)
        assert sorted(new.all(), key=str) == sorted([("B", False), ("C", True), (None, None)], key=str)
        assert session.exec(select(func.count()).select_from(ItemReview)).one() == 1


# --- generated criteria -------------------------------------------------------------------------------------


def test_generated_criteria_count_once_accepted_or_edited(engine, seeded_project):
    """Test that generated criteria are stored unaccepted, and accepting or editing one records who and when."""
    project = project_id(engine)
    draft = open_draft(project)
    draft.criteria += [
        CriterionDraft(None, "Asks about family history of heart disease.", 3, "completeness", [], True, False),
        CriterionDraft(None, "Recommends an exercise stress test.", 2, None, [], True, False),
        CriterionDraft(None, "Mentions aspirin.", 1, None, [], True, True),
    ]
    created = save(engine, draft, username="dr.okafor", role="annotator")
    stored = criteria_of(engine, created.item_id)
    author = user_id(engine, "dr.okafor")
    assert [(c.generated, c.accepted, c.accepted_by) for c in stored[3:]] == [
        (True, False, None),
        (True, False, None),
        (True, True, author),
    ]
    assert stored[5].accepted_at is not None
    curator = user_id(engine, "curator")
    with write_session(engine) as session:
        editing.accept_criterion(session, criterion_id=stored[3].id, actor_id=curator)
    edited = draft_of(engine, created.item_id)
    edited.criteria[4] = replace(edited.criteria[4], text="Recommends an exercise stress test if symptoms persist.")
    assert save(engine, edited, username="dr.okafor", role="annotator").outcome == "edited"
    after = criteria_of(engine, created.item_id)
    assert [(c.accepted, c.accepted_by) for c in after[3:]] == [(True, curator), (True, author), (True, author)]
    assert after[3].accepted_at is not None and after[4].accepted_at is not None
    accepted = audit_rows(engine, "criterion.accepted")
    assert [(e.entity, e.entity_id, e.actor_id) for e in accepted] == [("criterion", stored[3].id, curator)]
    with write_session(engine) as session, pytest.raises(EditError, match="written by a person"):
        editing.accept_criterion(session, criterion_id=stored[0].id, actor_id=curator)


def test_accepting_a_generated_criterion_through_the_editor_is_recorded(engine, seeded_project):
    """Test that ticking Accept on a saved generated criterion (no other change) saves its acceptance."""
    draft = open_draft(project_id(engine))
    draft.criteria.append(CriterionDraft(None, "Asks about smoking.", 3, None, [], True, False))
    created = save(engine, draft)
    reopened = draft_of(engine, created.item_id)
    reopened.criteria[3] = replace(reopened.criteria[3], accepted=True)
    result = save(engine, reopened)
    assert result.outcome == "edited"
    stored = criteria_of(engine, created.item_id)[3]
    assert stored.accepted and stored.accepted_by == user_id(engine, "curator")
    assert save(engine, draft_of(engine, created.item_id)).outcome == "unchanged"


# --- who may edit -------------------------------------------------------------------------------------------


def test_annotators_write_items_and_edit_only_their_own_drafts(engine, seeded_project):
    """Test that a physician may create an item and edit their draft, but not another's draft or an approved item."""
    project = project_id(engine)
    mine = save(engine, open_draft(project), username="dr.okafor", role="annotator")
    draft = draft_of(engine, mine.item_id)
    draft.tags = ["theme:cardiology"]
    assert save(engine, draft, username="dr.okafor", role="annotator").outcome == "edited"
    refusal = "Physicians can edit only the draft items they wrote; ask a curator to change this one."
    draft.tags = ["theme:other"]
    with pytest.raises(EditError) as raised:
        save(engine, draft, username="dr.lindqvist", role="annotator")
    assert raised.value.problems == [refusal]
    demo = draft_of(engine, current(engine, "demo-open-03").id)
    demo.tags = ["theme:x"]
    with pytest.raises(EditError) as raised:
        save(engine, demo, username="dr.okafor", role="annotator")
    assert raised.value.problems == [refusal]
    with write_session(engine) as session:
        row = session.get(Item, mine.item_id)
        assert row is not None
        row.status = "in_review"
        session.add(row)
    with pytest.raises(EditError):
        save(engine, draft, username="dr.okafor", role="annotator")
    assert save(engine, draft, username="curator", role="curator").outcome == "edited"
    assert current(engine, "local-00001").tags == ["theme:other"]


# --- history ------------------------------------------------------------------------------------------------


def test_history_lists_every_version_with_a_readable_diff(engine, seeded_project):
    """Test that history shows each version with author, note, labels, gold and only the changed lines."""
    old = labelled_open_item(engine)
    draft = draft_of(engine, old.id)
    second = draft.criteria[1]
    draft.criteria[1] = replace(second, points=7, axis="accuracy")
    draft.tags = [*draft.tags, "theme:fever"]
    draft.change_note = "Infection risk weighs more."
    result = save(engine, draft)
    with read_session(engine) as session:
        entries = editing.history(session, item_id=result.item_id)
        assert editing.history(session, item_id=old.id) == entries
        direct = editing.version_diff(session, old_item_id=old.id, new_item_id=result.item_id)
    before = version_counts(engine, old.id)
    assert [(e.item_id, e.version, e.is_current, e.status) for e in entries] == [
        (old.id, 1, False, "approved"),
        (result.item_id, 2, True, "approved"),
    ]
    assert (entries[0].labels, entries[0].gold, entries[0].diff) == (
        len(before["labels"]),
        len([g for g in before["gold"] if g[2]]),
        [],
    )
    assert entries[0].author == "Demo Admin"
    assert (entries[1].labels, entries[1].gold, entries[1].author) == (0, 0, "Dr. Imani Curator")
    assert entries[1].change_note == "Infection risk weighs more."
    tags = ", ".join(old.tags)
    assert (
        entries[1].diff
        == direct
        == [
            f"- Tags: {tags}",
            f"+ Tags: {tags}, theme:fever",
            f"- Criterion 2 [+6] (axis: completeness) {second.text} [tags: level:example]",
            f"+ Criterion 2 [+7] (axis: accuracy) {second.text} [tags: level:example]",
        ]
    )
    stored = criteria_of(engine, result.item_id)[1]
    assert stored.tags == ["level:example", "axis:accuracy"] and stored.axis == "accuracy"


def test_mcq_rendering_shows_stem_options_and_key():
    """Test that an MCQ version renders as stem, one line per option and the key, for a line diff."""
    lines = editing.render_lines(
        kind="mcq",
        specialties=[],
        dimension=None,
        tags=[],
        conversation=[],
        criteria=[],
        question="Which drug?\nPick one.",
        options={"A": "Heparin", "B": "Protamine"},
        answer_key="B",
        explanation=None,
    )
    assert lines == [
        "Specialties: -",
        "Dimension: -",
        "Tags: -",
        "Question: Which drug? ↵ Pick one.",
        "Option A: Heparin",
        "Option B: Protamine",
        "Key: B",
    ]


def test_labelled_demo_answers_and_annotations_belong_to_version_one(engine, seeded_project):
    """Test that after a new version every annotation still points at an answer of version 1 (labels stay put)."""
    old = labelled_open_item(engine)
    draft = draft_of(engine, old.id)
    draft.criteria[0] = replace(draft.criteria[0], points=9)
    result = save(engine, draft)
    with read_session(engine) as session:
        graded = session.exec(
            select(Answer.item_id).join(Annotation, col(Annotation.answer_id) == Answer.id).distinct()
        ).all()
        assert result.item_id not in graded and old.id in graded
    assert json.dumps(audit_rows(engine, "item.new_version")[0].detail)  # the detail is plain JSON

"""The item workflow: every transition allowed or refused with a sentence, approval rules (reviews or a reason,
a sound rubric or key), audit events, bulk changes over many items, tags edited in place with the content hash
recomputed, and only approved items getting grading work and generated answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from review import accounts, comparing, generation, grading, reviewing, workflow
from review.formats import item_content_hash
from review.importing import import_answers, import_items
from review.taxonomy import STATUSES
from storage import projects
from storage.db import read_session, write_session
from storage.models import Answer, Assignment, AuditEvent, Criterion, Item, ItemReview, Project, User
from tests.openai_stub import StubServer

PASSWORD = "workflow-test-pw"
CURATOR = "wf.curator"


# --- helpers ------------------------------------------------------------------------------------------------


def mcq_row(external_id: str, **changes: Any) -> dict[str, Any]:
    row = {
        "id": external_id,
        "question": f"Which drug for {external_id}?",
        "options": {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Placebo"},
        "answer_idx": "B",
        "meta_info": "step2",
    }
    row.update(changes)
    return row


def open_row(external_id: str, points: tuple[int, ...] = (5, -5, 3), tags: list[str] | None = None) -> dict:
    return {
        "prompt_id": external_id,
        "prompt": [{"role": "user", "content": f"Question {external_id}?"}],
        "rubrics": [
            {"criterion": f"Criterion {n} of {external_id}", "points": p, "tags": ["axis:accuracy"]}
            for n, p in enumerate(points)
        ],
        "example_tags": tags or [],
    }


def add_items(engine: Engine, project: str, rows: list[dict], status: str = "draft", **options: Any) -> None:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    with write_session(engine) as session:
        import_items(session, project_name=project, data=data, filename="items.jsonl", status=status, **options)


def user(engine: Engine, username: str, role: str = "annotator") -> int:
    with write_session(engine) as session:
        return accounts.create_user(session, username=username, role=role, password=PASSWORD).user_id


def curator(engine: Engine) -> int:
    return user(engine, CURATOR, "curator")


def project_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        found = session.exec(select(Project.id).where(Project.name == name)).one()
    assert found is not None
    return int(found)


def ids(engine: Engine, project: str, *external_ids: str) -> list[int]:
    """Current item version ids, in the order of the external ids given."""
    with read_session(engine) as session:
        rows = session.exec(
            select(Item.external_id, Item.id).where(
                Item.project_id == project_id(engine, project),
                Item.is_current == True,  # noqa: E712
            )
        ).all()
    by_external = {external: int(item_id or 0) for external, item_id in rows}
    return [by_external[external] for external in external_ids]


def statuses(engine: Engine, item_ids: list[int]) -> list[str]:
    with read_session(engine) as session:
        found = dict(session.exec(select(Item.id, Item.status).where(col(Item.id).in_(item_ids))).all())
    return [found[item_id] for item_id in item_ids]


def status_events(engine: Engine, action: str = "item.status") -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))))


def change(engine: Engine, item_ids: list[int], to: str, actor: int, role: str = "curator", reason: str = ""):
    with write_session(engine) as session:
        return workflow.change_status(session, item_ids=item_ids, to=to, actor_id=actor, role=role, reason=reason)


def add_reviews(engine: Engine, item_id: int, raters: list[int], status: str = "submitted") -> None:
    with write_session(engine) as session:
        for rater in raters:
            session.add(ItemReview(item_id=item_id, rater_id=rater, status=status, key_correct=True))


# --- the rules --------------------------------------------------------------------------------------------


def test_transition_table_is_the_agreed_workflow():
    """Test that TRANSITIONS and ACTIONS are the agreed moves and every other move gets a sentence naming the
    allowed ones."""
    assert workflow.TRANSITIONS == {
        "draft": ("in_review", "retired"),
        "in_review": ("approved", "draft", "retired"),
        "approved": ("retired", "in_review"),
        "retired": ("draft",),
    }
    assert workflow.ACTIONS == {
        "send_to_review": "in_review",
        "approve": "approved",
        "send_back": "draft",
        "retire": "retired",
        "reinstate": "draft",
    }
    for was in STATUSES:
        for to in STATUSES:
            refusal = workflow.transition_refusal(was, to)
            assert (refusal is None) == (to in workflow.TRANSITIONS[was]), (was, to)
    assert workflow.transition_refusal("draft", "approved") == (
        "It is a draft: it can be sent to review or retired, not approved."
    )
    assert workflow.transition_refusal("retired", "approved") == "It is retired: it can be reinstated, not approved."
    assert workflow.transition_refusal("approved", "draft") == (
        "It is approved: it can be retired or sent to review, not sent back to draft."
    )
    assert workflow.transition_refusal("in_review", "in_review") == "It is already in review."


@pytest.mark.parametrize("was", STATUSES)
def test_each_transition_is_stored_and_audited_or_refused_with_a_sentence(engine, was):
    """Test that, from each status, every allowed move is stored with one audit event (from, to, reason,
    reviews) and every other move is refused with the sentence, leaving the item and the audit as they were."""
    actor = curator(engine)
    for to in STATUSES:
        name = f"T-{was}-{to}"
        add_items(engine, name, [mcq_row(f"{name}-1")], status=was)
        [item_id] = ids(engine, name, f"{name}-1")
        before = len(status_events(engine))
        report = change(engine, [item_id], to, actor, reason="Panel decision 12")
        if to in workflow.TRANSITIONS[was]:
            assert (report.changed, report.refused) == ([f"{name}-1"], [])
            assert statuses(engine, [item_id]) == [to]
            event = status_events(engine)[-1]
            assert (event.actor_id, event.entity, event.entity_id) == (actor, "item", item_id)
            assert event.project_id == project_id(engine, name)
            assert {k: event.detail[k] for k in ("external_id", "from", "to", "reason", "reviews")} == {
                "external_id": f"{name}-1",
                "from": was,
                "to": to,
                "reason": "Panel decision 12",
                "reviews": 0,
            }
            assert event.detail["override"] == (to == "approved")
        else:
            assert report.changed == []
            assert report.refused == [(f"{name}-1", workflow.transition_refusal(was, to))]
            assert statuses(engine, [item_id]) == [was]
            assert len(status_events(engine)) == before


def test_a_physician_cannot_change_a_status(engine):
    """Test that an annotator's request is refused item by item with a sentence and changes nothing."""
    physician = user(engine, "wf.physician")
    add_items(engine, "P", [mcq_row("P-1"), mcq_row("P-2")], status="draft")
    item_ids = ids(engine, "P", "P-1", "P-2")
    report = change(engine, item_ids, "in_review", physician, role="annotator")
    assert report.changed == []
    assert report.refused == [
        ("P-1", "Only a curator or an admin can change an item's status."),
        ("P-2", "Only a curator or an admin can change an item's status."),
    ]
    assert statuses(engine, item_ids) == ["draft", "draft"]
    assert status_events(engine) == []
    with pytest.raises(workflow.WorkflowError, match="Status: 'published' is not one of"):
        change(engine, item_ids, "published", curator(engine))


def test_approval_needs_the_overlap_of_submitted_reviews_or_a_reason(engine):
    """Test that approval needs the project's overlap of submitted reviews of this version (drafts do not
    count), and that a reason approves anyway and is recorded as the override."""
    actor = curator(engine)
    raters = [user(engine, f"wf.dr{n}") for n in range(3)]
    add_items(engine, "Rev", [mcq_row(f"Rev-{n}") for n in range(3)], status="in_review")
    with write_session(engine) as session:
        projects.update_project(session=session, project_id=project_id(engine, "Rev"), overlap=2)
    one, two, none = ids(engine, "Rev", "Rev-0", "Rev-1", "Rev-2")
    add_reviews(engine, one, raters[:1])
    add_reviews(engine, one, raters[1:2], status="draft")
    add_reviews(engine, two, raters[:2])

    report = change(engine, [one, two, none], "approved", actor)
    assert report.changed == ["Rev-1"]
    assert report.refused == [
        ("Rev-0", "It has 1 of the 2 submitted reviews the project asks for; give a reason to approve it anyway."),
        ("Rev-2", "It has 0 of the 2 submitted reviews the project asks for; give a reason to approve it anyway."),
    ]
    assert report.sentence() == "1 item approved; 2 refused:"
    assert statuses(engine, [one, two, none]) == ["in_review", "approved", "in_review"]
    [event] = status_events(engine)
    assert (event.entity_id, event.detail["reviews"], event.detail["override"], event.detail["reason"]) == (
        two,
        2,
        False,
        "",
    )

    report = change(engine, [one], "approved", actor, reason="  Urgent: the panel checked the key.  ")
    assert (report.changed, report.refused, report.sentence()) == (["Rev-0"], [], "1 item approved.")
    event = status_events(engine)[-1]
    assert (event.entity_id, event.detail["reviews"], event.detail["override"], event.detail["reason"]) == (
        one,
        1,
        True,
        "Urgent: the panel checked the key.",
    )


def test_reviews_submitted_through_review_items_count(engine):
    """Test that reviews submitted by physicians through the review queue let an item be approved."""
    actor = curator(engine)
    add_items(engine, "Queue", [mcq_row("Queue-1")], status="in_review")
    pid = project_id(engine, "Queue")
    [item_id] = ids(engine, "Queue", "Queue-1")
    for n in range(2):
        physician = user(engine, f"wf.queue{n}")
        with write_session(engine) as session:
            claim = reviewing.claim_next_review(session, project_id=pid, user_id=physician)
        assert claim is not None
        form = reviewing.ItemReviewForm(key_correct=True, option_issue="none")
        with write_session(engine) as session:
            reviewing.submit_review(session, assignment_id=claim.assignment_id, user_id=physician, form=form)
    report = change(engine, [item_id], "approved", actor)
    assert (report.changed, report.refused) == (["Queue-1"], [])


def set_criterion(engine: Engine, item_id: int, position: int, **values: Any) -> None:
    with write_session(engine) as session:
        criterion = session.exec(
            select(Criterion).where(Criterion.item_id == item_id, Criterion.position == position)
        ).one()
        for name, value in values.items():
            setattr(criterion, name, value)
        session.add(criterion)


def test_an_unsound_item_is_not_approved_even_with_a_reason(engine):
    """Test that a generated criterion not yet accepted, a rubric without positive points and an answer key
    outside the options each block approval, a reason notwithstanding, and that accepting the criterion lets
    the item through."""
    actor = curator(engine)
    add_items(engine, "Sound", [open_row("Sound-gen"), open_row("Sound-neg", points=(5, -3))], status="in_review")
    add_items(engine, "Sound", [mcq_row("Sound-key"), mcq_row("Sound-ok")], status="in_review")
    generated, negative, bad_key, fine = ids(engine, "Sound", "Sound-gen", "Sound-neg", "Sound-key", "Sound-ok")
    set_criterion(engine, generated, 1, generated=True, accepted=False)
    set_criterion(engine, generated, 2, generated=True, accepted=True)
    set_criterion(engine, negative, 0, points=-2)  # an edit left no criterion with positive points
    with write_session(engine) as session:
        item = session.get(Item, bad_key)
        assert item is not None
        item.answer_key = "F"
        session.add(item)

    report = change(engine, [generated, negative, bad_key, fine], "approved", actor, reason="Checked by the panel.")
    assert report.changed == ["Sound-ok"]
    assert report.refused == [
        ("Sound-gen", "Criterion 2 was generated and is not accepted yet."),
        ("Sound-neg", "Its rubric has no criterion with positive points."),
        ("Sound-key", "Its answer key F is not one of its options (A, B, C, D)."),
    ]
    assert statuses(engine, [generated, negative, bad_key]) == ["in_review"] * 3

    set_criterion(engine, generated, 1, accepted=True)
    report = change(engine, [generated], "approved", actor, reason="Checked by the panel.")
    assert (report.changed, report.refused) == (["Sound-gen"], [])


def test_only_the_current_version_changes_status(engine):
    """Test that an older version of an item and an unknown id are refused with a sentence."""
    actor = curator(engine)
    add_items(engine, "V", [mcq_row("V-1")], status="draft")
    [old] = ids(engine, "V", "V-1")
    add_items(engine, "V", [mcq_row("V-1", question="A reworded stem?")], status="draft", on_conflict="new-version")
    [new] = ids(engine, "V", "V-1")
    assert new != old
    report = change(engine, [old, new, 987654], "in_review", actor)
    assert report.changed == ["V-1"]
    assert report.refused == [
        ("V-1", "This is version 1, not the item's current version."),
        ("#987654", "There is no such item."),
    ]
    assert statuses(engine, [old, new]) == ["draft", "in_review"]


def test_many_items_change_in_chunks_with_one_audit_event_each(engine, shared_data: Path):
    """Test that 1,273 MedQA items (more than two chunks) are sent to review and retired in one call each, with
    one audit event per item and a report naming every item."""
    data = (shared_data / "medqa" / "medqa_5options_test.jsonl").read_bytes()
    with write_session(engine) as session:
        import_items(session, project_name="Many", data=data, filename="medqa.jsonl", fmt="medqa")
    actor = curator(engine)
    with read_session(engine) as session:
        item_ids = [int(i or 0) for i in session.exec(select(Item.id).order_by(col(Item.id))).all()]
    assert len(item_ids) == 1273 > 2 * workflow.CHUNK
    report = change(engine, item_ids + item_ids[:5], "in_review", actor)
    assert len(report.changed) == 1273 and report.refused == []
    assert report.sentence() == "1273 items sent to review."
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(Item).where(Item.status == "in_review")).one() == 1273
        events = session.exec(
            select(AuditEvent.entity_id, AuditEvent.detail).where(AuditEvent.action == "item.status")
        ).all()
    assert sorted(entity_id for entity_id, _ in events) == item_ids
    assert all((detail["from"], detail["to"]) == ("draft", "in_review") for _, detail in events)

    retired = change(engine, item_ids, "retired", actor, reason="Replaced by the 2026 set.")
    assert len(retired.changed) == 1273
    assert set(statuses(engine, item_ids)) == {"retired"}
    assert len(status_events(engine)) == 2 * 1273


# --- tags ----------------------------------------------------------------------------------------------------


def expected_hash(item: Item, criteria: list[Criterion], tags: list[str]) -> str:
    return item_content_hash(
        kind=item.kind,
        conversation=item.conversation,
        criteria=[(c.text, c.points, c.tags) for c in sorted(criteria, key=lambda c: c.position)],
        question=item.question,
        options=item.options,
        answer_key=item.answer_key,
        explanation=item.explanation,
        meta_info=item.meta_info,
        specialties=item.specialties,
        dimension=item.dimension,
        tags=tags,
        extra=item.extra,
    )


def stored(engine: Engine, item_id: int) -> tuple[Item, list[Criterion]]:
    with read_session(engine) as session:
        item = session.get(Item, item_id)
        assert item is not None
        criteria = list(session.exec(select(Criterion).where(Criterion.item_id == item_id)).all())
    return item, criteria


def tag(engine: Engine, item_ids: list[int], actor: int, add=(), remove=(), role: str = "curator") -> int:
    with write_session(engine) as session:
        return workflow.tag_items(
            session, item_ids=item_ids, add=list(add), remove=list(remove), actor_id=actor, role=role
        )


def test_tags_are_edited_in_place_and_the_content_hash_follows(engine):
    """Test that adding a tag keeps the item version, appends the tag, recomputes the content hash as an import
    of the tagged row would, audits before and after, and that removing it gives back the imported hash."""
    actor = curator(engine)
    add_items(engine, "Tags", [open_row("Tags-1", tags=["theme:hedging"])], status="approved")
    add_items(engine, "Tags", [mcq_row("Tags-2")], status="approved")
    first, second = ids(engine, "Tags", "Tags-1", "Tags-2")
    imported = {item_id: stored(engine, item_id)[0].content_hash for item_id in (first, second)}

    assert tag(engine, [first, second], actor, add=[" needs-edit ", "panel:2026"]) == 2
    item, criteria = stored(engine, first)
    assert (item.id, item.version, item.is_current) == (first, 1, True)
    assert item.tags == ["theme:hedging", "needs-edit", "panel:2026"]
    assert item.content_hash == expected_hash(item, criteria, item.tags) != imported[first]
    again = "".join(json.dumps(r) + "\n" for r in [open_row("Tags-1", tags=item.tags)]).encode()
    with write_session(engine) as session:
        report = import_items(session, project_name="Tags", data=again, filename="again.jsonl", status="approved")
    assert (report.items_unchanged, report.items_added, report.items_new_version) == (1, 0, 0)

    assert tag(engine, [first, second], actor, add=["needs-edit"]) == 0  # both have it already
    assert tag(engine, [first, second], actor, remove=["needs-edit", "panel:2026"]) == 2
    assert stored(engine, first)[0].tags == ["theme:hedging"]
    assert {item_id: stored(engine, item_id)[0].content_hash for item_id in (first, second)} == imported

    events = status_events(engine, "item.tags")
    assert len(events) == 4
    assert (events[0].entity_id, events[0].actor_id, events[0].detail["before"], events[0].detail["after"]) == (
        first,
        actor,
        ["theme:hedging"],
        ["theme:hedging", "needs-edit", "panel:2026"],
    )
    assert events[-1].detail == {
        "external_id": "Tags-2",
        "version": 1,
        "before": ["needs-edit", "panel:2026"],
        "after": [],
    }


def test_bad_tags_and_physicians_are_refused_with_a_sentence(engine):
    """Test that an empty tag, a comma, a tag over 100 characters, the same tag added and removed, and a
    physician are refused with a sentence and store nothing."""
    actor = curator(engine)
    physician = user(engine, "wf.tagger")
    add_items(engine, "Bad", [mcq_row("Bad-1")])
    [item_id] = ids(engine, "Bad", "Bad-1")
    cases = [
        ({"add": ["  "]}, "Tag to add: write a tag."),
        ({"add": ["a,b"]}, "Tag to add 'a,b': a tag cannot hold a comma."),
        ({"add": ["x" * 101]}, "Tag to add: a tag is at most 100 characters; this one has 101."),
        ({"add": ["x"], "remove": ["x"]}, "Tag 'x' is both added and removed; choose one."),
        ({}, "Tag: write a tag to add or remove."),
    ]
    for changes, message in cases:
        with pytest.raises(workflow.WorkflowError) as refused:
            tag(engine, [item_id], actor, **changes)
        assert str(refused.value) == message
    with pytest.raises(workflow.WorkflowError, match="Only a curator or an admin can change an item's tags."):
        tag(engine, [item_id], physician, add=["fine"], role="annotator")
    assert tag(engine, [item_id], actor, add=["x" * 100]) == 1
    assert stored(engine, item_id)[0].tags == ["x" * 100]
    assert len(status_events(engine, "item.tags")) == 1


# --- only approved items get work -----------------------------------------------------------------------------


def workflow_project(engine: Engine) -> tuple[int, dict[str, int]]:
    """A project with one open item in each status (three answers each) and overlap 1; returns its id and the
    item ids by status."""
    rows = [open_row(f"W-{status}") for status in STATUSES]
    add_items(engine, "W", rows, status="draft")
    answers = "".join(
        json.dumps({"external_id": f"W-{status}", "model": f"model-{m}", "answer": f"Answer {m} for {status}"}) + "\n"
        for status in STATUSES
        for m in range(3)
    ).encode()
    with write_session(engine) as session:
        import_answers(session, project_name="W", data=answers, filename="answers.jsonl")
        projects.update_project(session=session, project_id=project_id(engine, "W"), overlap=1)
    by_status = dict(zip(STATUSES, ids(engine, "W", *(f"W-{status}" for status in STATUSES)), strict=True))
    actor = curator(engine)
    change(engine, [by_status["in_review"], by_status["approved"], by_status["retired"]], "in_review", actor)
    change(engine, [by_status["approved"]], "approved", actor, reason="Test set.")
    change(engine, [by_status["retired"]], "retired", actor)
    assert statuses(engine, list(by_status.values())) == list(STATUSES)
    return project_id(engine, "W"), by_status


def test_only_approved_items_get_grading_and_comparison_work(engine):
    """Test that physicians are given every answer of the approved item to grade and its answers to compare,
    and nothing of the draft, in-review or retired items; once retired, the approved item gives no more work."""
    pid, by_status = workflow_project(engine)
    graded_items, compared_items = set(), set()
    for n in range(4):
        physician = user(engine, f"wf.grader{n}")
        with write_session(engine) as session:
            claim = grading.claim_next(session, project_id=pid, user_id=physician)
        if claim is not None:
            with read_session(engine) as session:
                assignment = session.get(Assignment, claim.assignment_id)
                assert assignment is not None
                graded_items.add(assignment.item_id)
        with write_session(engine) as session:
            compare = comparing.claim_next(session, project_id=pid, user_id=physician)
        if compare is not None:
            with read_session(engine) as session:
                assignment = session.get(Assignment, compare.assignment_id)
                assert assignment is not None
                compared_items.add(assignment.item_id)
    assert graded_items == {by_status["approved"]}
    assert compared_items == {by_status["approved"]}
    with read_session(engine) as session:
        leased = session.exec(select(Assignment.item_id).where(Assignment.task.in_(["grade", "compare"]))).all()
    assert set(leased) == {by_status["approved"]}

    change(engine, [by_status["approved"]], "retired", curator_id(engine))
    latecomer = user(engine, "wf.latecomer")
    with write_session(engine) as session:
        assert grading.claim_next(session, project_id=pid, user_id=latecomer) is None
        assert comparing.claim_next(session, project_id=pid, user_id=latecomer) is None


def curator_id(engine: Engine) -> int:
    with read_session(engine) as session:
        found = session.exec(select(User.id).where(User.username == CURATOR)).one()
    return int(found or 0)


def test_only_approved_items_get_generated_answers(engine):
    """Test that a generation run asks the model about the approved item only and stores its answer only."""
    from review import endpoints

    pid, by_status = workflow_project(engine)
    with StubServer() as server:
        with write_session(engine) as session:
            endpoint = endpoints.add_endpoint(session, name="stub", base_url=server.base_url, model="stub-model")
            run_id = generation.start_generation(session, project_id=pid, endpoint_id=int(endpoint.id or 0))
        report = generation.execute_generation(engine, run_id)
    assert (report.status, report.done, report.total) == ("finished", 1, 1)
    assert [r["messages"][-1]["content"] for r in (req["json"] for req in server.requests)] == ["Question W-approved?"]
    with read_session(engine) as session:
        made = session.exec(select(Answer.item_id).where(Answer.source == "generated")).all()
    assert made == [by_status["approved"]]

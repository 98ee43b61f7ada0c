"""Use cases: an item's way through curation, and tags edited on many items at once.

Rules:
- Statuses: `draft` → `in_review` (physicians review the item, `overlap` of them) → `approved` (by a curator)
  → `retired`. The moves allowed are in TRANSITIONS: a draft goes to review or is retired; an item in review
  is approved, sent back to draft or retired; an approved item is retired or sent back to review; a retired
  item is reinstated as a draft. Only approved items get model answers and grading work.
- Only a curator or an admin changes a status or tags, and only on an item's current version.
- Approval needs a sound item: an open item has at least one criterion with positive points and no generated
  criterion that a physician has not accepted; a multiple-choice item's answer key is one of its options. It
  also needs the project's `overlap` submitted item reviews of this version, unless the curator gives a reason,
  which is recorded as the override.
- Every change is audited, one event per item ("item.status": from, to, reason, submitted reviews;
  "item.tags": before, after). Many items are changed in chunks, each chunk its own short transaction.
- A tag is text without commas, at most 100 characters. Editing tags keeps the item version and recomputes
  its content hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from review import catalog
from review.catalog import ItemFilters
from review.formats import item_content_hash
from review.taxonomy import STATUSES
from storage import projects
from storage import workflow as store

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("in_review", "retired"),
    "in_review": ("approved", "draft", "retired"),
    "approved": ("retired", "in_review"),
    "retired": ("draft",),
}
ACTIONS: dict[str, str] = {
    "send_to_review": "in_review",
    "approve": "approved",
    "send_back": "draft",
    "retire": "retired",
    "reinstate": "draft",
}
ACTION_NAMES = {
    "send_to_review": "send to review",
    "approve": "approve",
    "send_back": "send back to draft",
    "retire": "retire",
    "reinstate": "reinstate",
}
TAG_ACTIONS = {"add_tag": "add tag", "remove_tag": "remove tag"}
BULK_ACTIONS = {**TAG_ACTIONS, **ACTION_NAMES}
CHANGERS = ("curator", "admin")
STATUS_NAMES = {"draft": "a draft", "in_review": "in review", "approved": "approved", "retired": "retired"}
MAX_TAG_CHARS = 100
CHUNK = 500  # items per transaction (and per IN (...) list)
NOT_ALLOWED = "Only a curator or an admin can change an item's status."


class WorkflowError(ValueError):
    """A workflow request that cannot be carried out; the message is meant for the curator."""


# --- the rules (pure) ---------------------------------------------------------------------------------------


def done_phrase(to: str, was: str | None = None) -> str:
    """What happened to an item moved to `to` ("approved", "sent back to draft", "reinstated"...). Pure."""
    if to == "draft":
        return "reinstated" if was == "retired" else "sent back to draft"
    return {"in_review": "sent to review", "approved": "approved", "retired": "retired"}[to]


def may_change(role: str) -> bool:
    """True when this role may change items' status and tags. Pure."""
    return role in CHANGERS


def transition_refusal(was: str, to: str) -> str | None:
    """Why an item in status `was` cannot move to `to`, or None when it can. Pure."""
    if was == to:
        return f"It is already {STATUS_NAMES.get(was, was)}."
    allowed = TRANSITIONS.get(was, ())
    if to in allowed:
        return None
    ways = " or ".join(done_phrase(target, was) for target in allowed)
    return f"It is {STATUS_NAMES.get(was, was)}: it can be {ways}, not {done_phrase(to, was)}."


def soundness_problems(
    *, kind: str, positive_criteria: int, unaccepted_positions: Sequence[int], options: dict[str, str], key: str | None
) -> list[str]:
    """What keeps an item from being approved whatever the reviews say (empty when it is sound). Pure."""
    problems = []
    if kind == "open":
        if positive_criteria < 1:
            problems.append("Its rubric has no criterion with positive points.")
        if unaccepted_positions:
            numbers = ", ".join(str(position + 1) for position in unaccepted_positions)
            if len(unaccepted_positions) == 1:
                problems.append(f"Criterion {numbers} was generated and is not accepted yet.")
            else:
                problems.append(f"Criteria {numbers} were generated and are not accepted yet.")
    elif kind == "mcq":
        letters = ", ".join(sorted(options)) or "none"
        if not key:
            problems.append("It has no answer key.")
        elif key not in options:
            problems.append(f"Its answer key {key} is not one of its options ({letters}).")
    return problems


def reviews_refusal(submitted: int, needed: int) -> str | None:
    """Why the reviews do not allow approval yet (None when they do). Pure."""
    if submitted >= needed:
        return None
    return (
        f"It has {submitted} of the {needed} submitted reviews the project asks for; "
        "give a reason to approve it anyway."
    )


def check_tag(tag: str, where: str = "Tag") -> str:
    """The tag as stored (trimmed), or WorkflowError naming what is wrong. Pure."""
    cleaned = (tag or "").strip()
    if not cleaned:
        raise WorkflowError(f"{where}: write a tag.")
    if "," in cleaned:
        raise WorkflowError(f"{where} {cleaned!r}: a tag cannot hold a comma.")
    if len(cleaned) > MAX_TAG_CHARS:
        raise WorkflowError(f"{where}: a tag is at most {MAX_TAG_CHARS} characters; this one has {len(cleaned)}.")
    return cleaned


def retagged(tags: Sequence[str], add: Sequence[str], remove: Sequence[str]) -> list[str]:
    """Tags after adding (at the end, once) and removing (every occurrence). Pure."""
    kept = [tag for tag in tags if tag not in set(remove)]
    for tag in add:
        if tag not in kept:
            kept.append(tag)
    return kept


@dataclass
class TransitionReport:
    """What a status change did: the external ids changed, and those refused with the reason."""

    to: str
    changed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def sentence(self) -> str:
        """The report line, e.g. "12 items approved; 3 refused:" (the refusals are listed apart). Pure."""
        count = len(self.changed)
        line = f"{count} {'item' if count == 1 else 'items'} {done_phrase(self.to)}"
        if self.refused:
            return f"{line}; {len(self.refused)} refused:"
        return line + "."


# --- use cases ----------------------------------------------------------------------------------------------


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(int(value) for value in values))


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def change_status(
    session: Session, *, item_ids: list[int], to: str, actor_id: int, role: str, reason: str = ""
) -> TransitionReport:
    """Move items to status `to` where the rules allow it; the report names each item changed or refused
    (with the reason). One audit event per changed item. Commits (in chunks)."""
    if to not in STATUSES:
        raise WorkflowError(f"Status: {to!r} is not one of {', '.join(STATUSES)}.")
    reason = (reason or "").strip()
    report = TransitionReport(to=to)
    ids = _unique(item_ids)
    if not may_change(role):
        report.refused = [(external_id, NOT_ALLOWED) for external_id in _external_ids(session, ids)]
        return report
    overlaps: dict[int, int] = {}
    for chunk in _chunks(ids):
        _change_chunk(session, chunk, to, actor_id, reason, overlaps, report)
        session.commit()
    return report


def _external_ids(session: Session, ids: list[int]) -> list[str]:
    found: dict[int, str] = {}
    for chunk in _chunks(ids):
        states = store.item_states(session=session, item_ids=chunk, lock=False)
        found.update({item_id: state.external_id for item_id, state in states.items()})
    return [found.get(item_id, f"#{item_id}") for item_id in ids]


def _overlap(session: Session, project_id: int, overlaps: dict[int, int]) -> int:
    if project_id not in overlaps:
        project = projects.get_project(session=session, project_id=project_id)
        overlaps[project_id] = project.overlap if project is not None else 1
    return overlaps[project_id]


def _change_chunk(
    session: Session,
    chunk: list[int],
    to: str,
    actor_id: int,
    reason: str,
    overlaps: dict[int, int],
    report: TransitionReport,
) -> None:
    states = store.item_states(session=session, item_ids=chunk)
    rubrics = store.rubric_facts(session=session, item_ids=chunk) if to == "approved" else {}
    reviews = store.submitted_review_counts(session=session, item_ids=chunk)
    moving: dict[str, list[int]] = {}
    events: list[dict[str, Any]] = []
    for item_id in chunk:
        state = states.get(item_id)
        if state is None:
            report.refused.append((f"#{item_id}", "There is no such item."))
            continue
        problems = _refusals(session, state, to, reason, rubrics, reviews.get(item_id, 0), overlaps)
        if problems:
            report.refused.append((state.external_id, " ".join(problems)))
            continue
        needed = _overlap(session, state.project_id, overlaps)
        submitted = reviews.get(item_id, 0)
        moving.setdefault(state.status, []).append(item_id)
        report.changed.append(state.external_id)
        events.append(
            {
                "action": "item.status",
                "entity": "item",
                "entity_id": item_id,
                "project_id": state.project_id,
                "detail": {
                    "external_id": state.external_id,
                    "version": state.version,
                    "from": state.status,
                    "to": to,
                    "reason": reason,
                    "reviews": submitted,
                    "override": to == "approved" and submitted < needed,
                },
            }
        )
    for was, moved in moving.items():
        store.set_status(session=session, item_ids=moved, status=to, was=was)
    store.add_audit_events(session=session, actor_id=actor_id, events=events)


def _refusals(
    session: Session,
    state: store.ItemState,
    to: str,
    reason: str,
    rubrics: dict[int, store.RubricFacts],
    submitted: int,
    overlaps: dict[int, int],
) -> list[str]:
    if not state.is_current:
        return [f"This is version {state.version}, not the item's current version."]
    refusal = transition_refusal(state.status, to)
    if refusal is not None:
        return [refusal]
    if to != "approved":
        return []
    rubric = rubrics.get(state.item_id, store.RubricFacts(0, []))
    problems = soundness_problems(
        kind=state.kind,
        positive_criteria=rubric.positive,
        unaccepted_positions=rubric.unaccepted_positions,
        options=state.options,
        key=state.answer_key,
    )
    short = reviews_refusal(submitted, _overlap(session, state.project_id, overlaps))
    if short is not None and not reason:
        problems.append(short)
    return problems


def tag_items(
    session: Session, *, item_ids: list[int], add: list[str], remove: list[str], actor_id: int, role: str
) -> int:
    """Add and remove tags on the current versions among these items, recomputing each changed item's content
    hash; returns how many items changed. One audit event per changed item. Commits (in chunks)."""
    if not may_change(role):
        raise WorkflowError("Only a curator or an admin can change an item's tags.")
    adding = list(dict.fromkeys(check_tag(tag, "Tag to add") for tag in add))
    removing = list(dict.fromkeys(check_tag(tag, "Tag to remove") for tag in remove))
    both = sorted(set(adding) & set(removing))
    if both:
        raise WorkflowError(f"Tag {both[0]!r} is both added and removed; choose one.")
    if not adding and not removing:
        raise WorkflowError("Tag: write a tag to add or remove.")
    changed = 0
    for chunk in _chunks(_unique(item_ids)):
        updates: list[tuple[int, list[str], str]] = []
        events: list[dict[str, Any]] = []
        for item in store.taggable_items(session=session, item_ids=chunk):
            if not item.is_current:
                continue
            tags = retagged(item.tags, adding, removing)
            if tags == item.tags:
                continue
            content_hash = item_content_hash(
                kind=item.kind,
                conversation=item.conversation,
                criteria=item.criteria,
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
            updates.append((item.item_id, tags, content_hash))
            events.append(
                {
                    "action": "item.tags",
                    "entity": "item",
                    "entity_id": item.item_id,
                    "project_id": item.project_id,
                    "detail": {
                        "external_id": item.external_id,
                        "version": item.version,
                        "before": item.tags,
                        "after": tags,
                    },
                }
            )
        store.set_tags(session=session, changes=updates)
        store.add_audit_events(session=session, actor_id=actor_id, events=events)
        session.commit()
        changed += len(updates)
    return changed


@dataclass(frozen=True)
class BulkReport:
    """What a bulk action did, as the Items page reports it: a line, the items refused with the reason, and
    the tag concerned (shown apart, as text)."""

    message: str
    refused: list[tuple[str, str]] = field(default_factory=list)
    tag: str = ""


def apply_action(
    session: Session, *, action: str, item_ids: list[int], actor_id: int, role: str, tag: str = "", reason: str = ""
) -> BulkReport:
    """Run one of BULK_ACTIONS (a tag added or removed, or a move in the workflow) on these items. Raises
    WorkflowError for a request that cannot start. Commits (in chunks)."""
    if action not in BULK_ACTIONS:
        raise WorkflowError(f"Action: {action!r} is not one of {', '.join(BULK_ACTIONS)}.")
    ids = _unique(item_ids)
    if not ids:
        raise WorkflowError("Choose at least one item.")
    if action in TAG_ACTIONS:
        adding = action == "add_tag"
        changed = tag_items(
            session,
            item_ids=ids,
            add=[tag] if adding else [],
            remove=[] if adding else [tag],
            actor_id=actor_id,
            role=role,
        )
        word = "item" if changed == 1 else "items"
        if adding:
            message = f"Tag added to {changed} {word}; {len(ids) - changed} already had it."
        else:
            message = f"Tag removed from {changed} {word}; {len(ids) - changed} did not have it."
        return BulkReport(message=message, tag=tag.strip())
    report = change_status(session, item_ids=ids, to=ACTIONS[action], actor_id=actor_id, role=role, reason=reason)
    return BulkReport(message=report.sentence(), refused=report.refused)


def matching_item_ids(
    session: Session,
    *,
    project_id: int,
    kind: str | None = None,
    status: str | None = None,
    specialty: str | None = None,
    dimension: str | None = None,
    text: str | None = None,
    tags: Sequence[str] = (),
    flagged: bool = False,
) -> list[int]:
    """The ids of the project's current items matching the Items page's filters, in id order (for "apply to
    all N matching"). Read-only."""
    filters = ItemFilters(kind, status, specialty, dimension, text, tuple(tags), flagged)
    return catalog.matching_ids(session, project_id=project_id, filters=filters)

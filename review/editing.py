"""Use cases behind the item editor: write an item from scratch, edit it, keep its versions, show its history.

Rules:
- `check_draft` lists every problem of a draft, each naming where it is ("Criterion 3: ...").
- A new item is version 1, a draft, with a generated external id (`local-00001`) when none is given.
- Saving an unchanged draft writes nothing. Saving a changed version that anything graded (criterion
  labels, gradings, gold labels, item reviews, comparisons, verdicts, judge attempts) adds version + 1 and
  leaves the graded version and everything on it untouched; when the prompt (conversation, question,
  options) is the same, the answers are copied to the new version, without labels, to be graded against
  the new rubric. A version whose prompt changes while it has answers also gets a new version (its answers
  answered the old prompt, so they are not copied). Any other change edits the version in place.
- Each criterion of a new version points at the criterion it came from (`previous_criterion_id`).
- A criterion drafted by a model (`generated`) counts once a physician accepts it or edits its text or
  points; who and when are recorded.
- Curators and admins may edit any item; annotators may write new items and edit the drafts they wrote.
- Every save and every acceptance is audited with a compact before / after.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from review import mcq
from review.formats import MAX_ID_CHARS, OPTION_LETTER, POINTS_MAX, POINTS_MIN, item_content_hash, tag_value
from review.taxonomy import DEFAULT_SPECIALTIES, DIMENSIONS
from storage import audit, items, projects, users, work
from storage import editing as store
from storage.models import Criterion, Item, utcnow

KINDS = ("open", "mcq")
# HealthBench's rubric axes
AXES = ("accuracy", "completeness", "context_awareness", "communication_quality", "instruction_following")
TURN_ROLES = ("user", "assistant", "system")
# also accepted, so that imported conversations that carry it stay editable
IMPORTED_ROLES = ("developer",)
EDITOR_ROLES = ("annotator", "curator", "admin")
LOCAL_ID_PREFIX = "local-"
EDITOR_FORMAT = "editor"
DIFF_LINES_AUDITED = 60


class EditError(ValueError):
    """A draft that cannot be saved as asked; `problems` holds one sentence per problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Turn:
    role: str
    content: str


@dataclass
class CriterionDraft:
    criterion_id: int | None
    text: str
    points: int
    axis: str | None
    tags: list[str] = field(default_factory=list)  # without the axis:* tag (the axis has its own field)
    generated: bool = False
    accepted: bool = True


@dataclass
class ItemDraft:
    project_id: int
    item_id: int | None
    external_id: str
    kind: str
    specialties: list[str] = field(default_factory=list)
    dimension: str | None = None
    tags: list[str] = field(default_factory=list)
    conversation: list[Turn] = field(default_factory=list)
    question: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    answer_key: str | None = None
    explanation: str | None = None
    criteria: list[CriterionDraft] = field(default_factory=list)
    change_note: str = ""


@dataclass(frozen=True)
class SaveResult:
    item_id: int
    external_id: str
    version: int
    outcome: str  # created | edited | new_version | unchanged
    answers_copied: int = 0
    labels_kept: int = 0  # labels that stay with the version replaced (new_version only)
    reviews_kept: int = 0  # item reviews that stay with the version replaced (new_version only)

    def sentence(self) -> str:
        """What the save did, in one sentence for the curator. Pure."""
        if self.outcome == "created":
            return f"Created item {self.external_id} (version 1, draft)."
        if self.outcome == "unchanged":
            return f"Nothing changed: item {self.external_id} stays at version {self.version}."
        if self.outcome == "edited":
            return f"Saved item {self.external_id}, version {self.version}."
        kept = f"the old version keeps its {self.labels_kept} label{'' if self.labels_kept == 1 else 's'}"
        if self.reviews_kept:
            kept += f" and {self.reviews_kept} item review{'' if self.reviews_kept == 1 else 's'}"
        copied = (
            f"; {self.answers_copied} answer{'' if self.answers_copied == 1 else 's'} copied to grade again"
            if self.answers_copied
            else ""
        )
        return f"Saved as version {self.version}: {kept}{copied}."


@dataclass(frozen=True)
class VersionEntry:
    item_id: int
    version: int
    status: str
    is_current: bool
    created_at: datetime
    author: str
    change_note: str
    labels: int
    gold: int
    diff: list[str]


# --- drafts ------------------------------------------------------------------------------------------------


def new_draft(*, project_id: int, kind: str) -> ItemDraft:
    """An empty draft: one empty user turn (open) or options A-D (mcq). Pure."""
    if kind not in KINDS:
        raise EditError([f"Kind: must be open or mcq, not {kind!r}."])
    if kind == "open":
        return ItemDraft(
            project_id=project_id, item_id=None, external_id="", kind=kind, conversation=[Turn("user", "")]
        )
    return ItemDraft(
        project_id=project_id,
        item_id=None,
        external_id="",
        kind=kind,
        question="",
        options=[(letter, "") for letter in "ABCD"],
    )


def _axis_of(criterion: Criterion) -> str | None:
    return criterion.axis or tag_value(criterion.tags, "axis")


def _other_tags(tags: Sequence[str]) -> list[str]:
    return [tag for tag in tags if not tag.startswith("axis:")]


def draft_of(session: Session, *, item_id: int) -> ItemDraft:
    """The editable draft of one item version. Read-only."""
    item = items.get_item(session=session, item_id=item_id)
    if item is None or item.id is None:
        raise EditError(["That item no longer exists."])
    criteria = items.list_criteria(session=session, item_id=item.id)
    return ItemDraft(
        project_id=item.project_id,
        item_id=item.id,
        external_id=item.external_id,
        kind=item.kind,
        specialties=list(item.specialties),
        dimension=item.dimension,
        tags=list(item.tags),
        conversation=[Turn(str(turn.get("role", "")), str(turn.get("content", ""))) for turn in item.conversation],
        question=item.question,
        options=list(item.options.items()),
        answer_key=item.answer_key,
        explanation=item.explanation,
        criteria=[
            CriterionDraft(
                criterion_id=c.id,
                text=c.text,
                points=c.points,
                axis=_axis_of(c),
                tags=_other_tags(c.tags),
                generated=c.generated,
                accepted=c.accepted,
            )
            for c in criteria
        ],
    )


def version_of(session: Session, *, item_id: int) -> tuple[int, str]:
    """(version number, status) of one item version. Read-only."""
    item = items.get_item(session=session, item_id=item_id)
    if item is None:
        raise EditError(["That item no longer exists."])
    return item.version, item.status


def item_choices(session: Session, *, project_id: int) -> list[tuple[int, str, str]]:
    """(item id, external id, kind) of the project's current items, by external id. Read-only."""
    return store.current_item_choices(session=session, project_id=project_id)


# --- validation --------------------------------------------------------------------------------------------


def _whole_points(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not POINTS_MIN <= value <= POINTS_MAX or value == 0:
        return None
    return value


def _check_conversation(draft: ItemDraft, problems: list[str]) -> None:
    if not draft.conversation:
        problems.append("Conversation: add at least one turn.")
        return
    for number, turn in enumerate(draft.conversation, 1):
        if turn.role not in TURN_ROLES + IMPORTED_ROLES:
            problems.append(f"Turn {number}: the role must be user, assistant or system, not {turn.role!r}.")
        if not (turn.content or "").strip():
            problems.append(f"Turn {number}: the text is empty.")
    last = draft.conversation[-1]
    if last.role != "user":
        problems.append(
            f"Conversation: it must end with a user turn (turn {len(draft.conversation)} is {last.role or 'empty'})."
        )


def _check_rubric(draft: ItemDraft, problems: list[str]) -> None:
    for number, criterion in enumerate(draft.criteria, 1):
        if not (criterion.text or "").strip():
            problems.append(f"Criterion {number}: the text is empty.")
        if _whole_points(criterion.points) is None:
            problems.append(
                f"Criterion {number}: points must be a whole number from -10 to 10 other than 0, "
                f"not {criterion.points!r}."
            )
        if criterion.axis and criterion.axis not in AXES:
            problems.append(
                f"Criterion {number}: the axis must be one of {', '.join(AXES)} or empty, not {criterion.axis!r}."
            )
        for tag in criterion.tags:
            if tag.startswith("axis:"):
                problems.append(f"Criterion {number}: choose the axis in its own field, not as the tag {tag!r}.")
    counted = [c for c in draft.criteria if c.accepted or not c.generated]
    if not any(isinstance(c.points, int | float) and c.points > 0 for c in counted):
        problems.append(
            "Rubric: an open item needs at least one criterion with positive points"
            + (" (generated criteria count once accepted)." if len(counted) < len(draft.criteria) else ".")
        )


def _check_mcq(draft: ItemDraft, problems: list[str]) -> None:
    if not (draft.question or "").strip():
        problems.append("Question: the stem is empty.")
    seen: set[str] = set()
    letters: list[str] = []
    for number, (letter, text) in enumerate(draft.options, 1):
        letter = (letter or "").strip()
        if not OPTION_LETTER.match(letter):
            problems.append(f"Option {number}: the letter must be one capital letter A-Z, not {letter!r}.")
        elif letter in seen:
            problems.append(f"Option {number}: the letter {letter} is used twice.")
        else:
            seen.add(letter)
            letters.append(letter)
        if not (text or "").strip():
            problems.append(f"Option {number}: the text is empty.")
    if len(draft.options) < 2:
        problems.append("Options: a question needs at least 2 options.")
    key = (draft.answer_key or "").strip()
    if not key:
        problems.append("Key: choose the correct option.")
    elif key not in letters:
        problems.append(f"Key: {key!r} is not one of the options ({', '.join(letters) or 'none'}).")
    if draft.criteria:
        problems.append("Rubric: a multiple-choice item has no rubric; its key is what answers are scored on.")


def _check_against_database(session: Session, draft: ItemDraft, problems: list[str]) -> None:
    external_id = draft.external_id.strip()
    if projects.get_project(session=session, project_id=draft.project_id) is None:
        problems.append("Project: there is no such project.")
        return
    if draft.item_id is None:
        if external_id and store.external_id_in_use(
            session=session, project_id=draft.project_id, external_id=external_id
        ):
            problems.append(f"External id: {external_id!r} is already used by another item in this project.")
        return
    existing = items.get_item(session=session, item_id=draft.item_id)
    if existing is None:
        problems.append("This item no longer exists.")
        return
    if existing.project_id != draft.project_id:
        problems.append("Project: an item stays in the project it was written in.")
    if existing.kind != draft.kind:
        problems.append(f"Kind: a saved item keeps its kind ({existing.kind}).")
    if external_id and external_id != existing.external_id:
        if store.external_id_in_use(session=session, project_id=draft.project_id, external_id=external_id):
            problems.append(f"External id: {external_id!r} is already used by another item in this project.")
        else:
            problems.append(f"External id: a saved item keeps its id ({existing.external_id!r}).")


def check_draft(draft: ItemDraft, session: Session | None = None) -> list[str]:
    """Every problem of a draft, each naming where it is. With a session, also checks the external id
    against the project and the specialties against the database's taxonomy (without: the default
    taxonomy). Read-only."""
    problems: list[str] = []
    if draft.kind not in KINDS:
        problems.append(f"Kind: must be open or mcq, not {draft.kind!r}.")
    external_id = draft.external_id.strip()
    if len(external_id) > MAX_ID_CHARS:
        problems.append(f"External id: at most {MAX_ID_CHARS} characters (this one has {len(external_id)}).")
    if draft.dimension and draft.dimension not in DIMENSIONS:
        problems.append(f"Dimension: must be one of {', '.join(DIMENSIONS)}, not {draft.dimension!r}.")
    known = (
        set(users.list_specialties(session=session, active_only=False))
        if session is not None
        else set(DEFAULT_SPECIALTIES)
    )
    for specialty in draft.specialties:
        if specialty not in known:
            problems.append(f"Specialty {specialty!r} is not in the taxonomy.")
    if draft.kind == "open":
        _check_conversation(draft, problems)
        _check_rubric(draft, problems)
    elif draft.kind == "mcq":
        _check_mcq(draft, problems)
    if session is not None:
        _check_against_database(session, draft, problems)
    return problems


# --- saving ------------------------------------------------------------------------------------------------


@dataclass
class _Content:
    """A valid draft's content in the form it is stored in."""

    external_id: str
    specialties: list[str]
    dimension: str | None
    tags: list[str]
    conversation: list[dict[str, str]]
    question: str | None
    options: dict[str, str]
    answer_key: str | None
    explanation: str | None
    criteria: list[dict[str, Any]]  # text, points, tags, axis, generated, accepted, criterion_id
    content_hash: str = ""

    def prompt(self) -> tuple[Any, ...]:
        return (self.conversation, self.question, self.options)


def _stored_tags(draft: CriterionDraft, stored: Criterion | None) -> list[str]:
    """The criterion's tags with its axis as an `axis:*` tag; unchanged tags keep their stored order."""
    others = [tag.strip() for tag in draft.tags if tag.strip()]
    axis = draft.axis or None
    if stored is not None and _other_tags(stored.tags) == others and _axis_of(stored) == axis:
        return list(stored.tags)
    return others + ([f"axis:{axis}"] if axis else [])


def _content(draft: ItemDraft, existing: Item | None, stored: dict[int, Criterion]) -> _Content:
    criteria: list[dict[str, Any]] = []
    if draft.kind == "open":
        conversation = [{"role": turn.role, "content": turn.content} for turn in draft.conversation]
        question, options, key, explanation = None, {}, None, None
        for criterion in draft.criteria:
            before = stored.get(criterion.criterion_id) if criterion.criterion_id is not None else None
            criteria.append(
                {
                    "criterion_id": criterion.criterion_id if before is not None else None,
                    "text": criterion.text,
                    "points": int(criterion.points),
                    "tags": _stored_tags(criterion, before),
                    "axis": criterion.axis or None,
                    "generated": criterion.generated if before is None else before.generated,
                    "accepted": criterion.accepted,
                }
            )
    else:
        conversation = []
        question = draft.question or ""
        options = {letter.strip(): text for letter, text in draft.options}
        key = (draft.answer_key or "").strip()
        explanation = draft.explanation or None
    content = _Content(
        external_id=draft.external_id.strip(),
        specialties=list(dict.fromkeys(draft.specialties)),
        dimension=draft.dimension or None,
        tags=list(draft.tags),
        conversation=conversation,
        question=question,
        options=options,
        answer_key=key,
        explanation=explanation,
        criteria=criteria,
    )
    content.content_hash = item_content_hash(
        kind=draft.kind,
        conversation=content.conversation,
        criteria=[(c["text"], c["points"], c["tags"]) for c in criteria],
        question=content.question,
        options=content.options,
        answer_key=content.answer_key,
        explanation=content.explanation,
        meta_info=existing.meta_info if existing is not None else None,
        specialties=content.specialties,
        dimension=content.dimension,
        tags=content.tags,
        extra=dict(existing.extra) if existing is not None else {},
    )
    return content


def _require_editor(session: Session, existing: Item | None, actor_id: int, role: str) -> None:
    if role in ("curator", "admin"):
        return
    if role != "annotator":
        raise EditError(["Only physicians, curators and admins can write items."])
    if existing is None:
        return
    first = items.list_item_versions(session=session, project_id=existing.project_id, external_id=existing.external_id)
    if existing.status != "draft" or not first or first[0].created_by != actor_id:
        raise EditError(["Physicians can edit only the draft items they wrote; ask a curator to change this one."])


def _acceptance(content: dict[str, Any], before: Criterion | None, actor_id: int, now: datetime) -> dict[str, Any]:
    """generated / accepted / accepted_by / accepted_at of a criterion as saved by this actor."""
    if not content["generated"]:
        return {"generated": False, "accepted": True, "accepted_by": None, "accepted_at": None}
    was_accepted = before is not None and before.accepted
    edited = before is not None and (before.text != content["text"] or before.points != content["points"])
    accepted = was_accepted or bool(content["accepted"]) or edited
    if accepted and not was_accepted:
        return {"generated": True, "accepted": True, "accepted_by": actor_id, "accepted_at": now}
    return {
        "generated": True,
        "accepted": accepted,
        "accepted_by": before.accepted_by if before is not None else None,
        "accepted_at": before.accepted_at if before is not None else None,
    }


def _flag(content: dict[str, Any], before: Criterion | None) -> dict[str, Any]:
    """A flag for rewriting stays on a criterion whose text and points stay; a rewrite clears it."""
    if before is not None and before.text == content["text"] and before.points == content["points"]:
        return {"flagged": before.flagged, "flag_reason": before.flag_reason}
    return {"flagged": False, "flag_reason": None}


def _criterion_row(
    content: dict[str, Any], position: int, before: Criterion | None, actor_id: int, now: datetime
) -> dict[str, Any]:
    return {
        "position": position,
        "text": content["text"],
        "points": content["points"],
        "tags": content["tags"],
        "axis": content["axis"],
        **_flag(content, before),
        **_acceptance(content, before, actor_id, now),
    }


def _next_local_id(session: Session, project_id: int) -> str:
    taken = store.external_ids_with_prefix(session=session, project_id=project_id, prefix=LOCAL_ID_PREFIX)
    numbers = [int(match.group(1)) for tid in taken if (match := re.fullmatch(r"local-(\d+)", tid))]
    return f"{LOCAL_ID_PREFIX}{max(numbers, default=0) + 1:05d}"


def _summary(item_fields: dict[str, Any], criteria: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A compact picture of a version for the audit trail."""
    return {
        "content_hash": item_fields.get("content_hash"),
        "criteria": len(criteria),
        "points": [c["points"] for c in criteria],
        "turns": len(item_fields.get("conversation") or []),
        "options": len(item_fields.get("options") or {}),
        "answer_key": item_fields.get("answer_key"),
    }


def save_item(session: Session, draft: ItemDraft, *, actor_id: int, role: str) -> SaveResult:
    """Save a draft: create an item, edit a version in place, or add a new version when the version was
    graded; nothing is written when the draft has problems (EditError lists them). Audited. Commits."""
    existing: Item | None = None
    if draft.item_id is not None:
        existing = items.get_item(session=session, item_id=draft.item_id)
        if existing is None or existing.id is None:
            raise EditError(["This item no longer exists."])
        if not existing.is_current:
            raise EditError(
                [
                    f"Version {existing.version} of item {existing.external_id} is not the current one; "
                    "open the current version to edit it."
                ]
            )
    _require_editor(session, existing, actor_id, role)
    problems = check_draft(draft, session)
    if problems:
        raise EditError(problems)
    stored: dict[int, Criterion] = {}
    if existing is not None and existing.id is not None:
        stored = {c.id: c for c in items.list_criteria(session=session, item_id=existing.id) if c.id is not None}
        strangers = [
            f"Criterion {number}: it belongs to another item; reload this item."
            for number, c in enumerate(draft.criteria, 1)
            if c.criterion_id is not None and c.criterion_id not in stored
        ]
        if strangers:
            raise EditError(strangers)
    content = _content(draft, existing, stored)
    if existing is None:
        return _create(session, draft, content, actor_id)
    assert existing.id is not None
    work.lock_item(session=session, item_id=existing.id)
    if content.content_hash == existing.content_hash:
        return _accept_only(session, existing, content, stored, actor_id)
    use = store.version_use(session=session, item_id=existing.id)
    prompt_changed = content.prompt() != (existing.conversation, existing.question, dict(existing.options))
    if use.graded or (prompt_changed and store.count_answers(session=session, item_id=existing.id)):
        return _new_version(
            session, draft, existing, content, stored, actor_id, use.labels, use.item_reviews, not prompt_changed
        )
    return _edit_in_place(session, draft, existing, content, stored, actor_id)


def _item_fields(content: _Content) -> dict[str, Any]:
    return {
        "specialties": content.specialties,
        "dimension": content.dimension,
        "tags": content.tags,
        "content_hash": content.content_hash,
        "conversation": content.conversation,
        "question": content.question,
        "options": content.options,
        "answer_key": content.answer_key,
        "explanation": content.explanation,
    }


def _create(session: Session, draft: ItemDraft, content: _Content, actor_id: int) -> SaveResult:
    now = utcnow()
    external_id = content.external_id or _next_local_id(session, draft.project_id)
    fields = _item_fields(content)
    item_id = store.add_item_version(
        session=session,
        row={
            "project_id": draft.project_id,
            "external_id": external_id,
            "kind": draft.kind,
            "version": 1,
            "is_current": True,
            "status": "draft",
            "source_format": EDITOR_FORMAT,
            "created_at": now,
            "created_by": actor_id,
            "change_note": draft.change_note.strip() or None,
            **fields,
        },
    )
    for position, criterion in enumerate(content.criteria):
        store.add_criterion(
            session=session, row={"item_id": item_id, **_criterion_row(criterion, position, None, actor_id, now)}
        )
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="item.created",
        entity="item",
        entity_id=item_id,
        project_id=draft.project_id,
        detail={
            "external_id": external_id,
            "kind": draft.kind,
            "version": 1,
            "after": _summary(fields, content.criteria),
            "change_note": draft.change_note.strip() or None,
        },
    )
    session.commit()
    return SaveResult(item_id=item_id, external_id=external_id, version=1, outcome="created")


def _accept_only(
    session: Session, existing: Item, content: _Content, stored: dict[int, Criterion], actor_id: int
) -> SaveResult:
    """The same content: record the acceptance of generated criteria, if any, and nothing else."""
    assert existing.id is not None
    now = utcnow()
    accepted = [
        c["criterion_id"]
        for c in content.criteria
        if c["criterion_id"] is not None and c["generated"] and c["accepted"] and not stored[c["criterion_id"]].accepted
    ]
    if not accepted:
        return SaveResult(existing.id, existing.external_id, existing.version, "unchanged")
    for criterion_id in accepted:
        store.accept_criterion(session=session, criterion_id=criterion_id, accepted_by=actor_id, accepted_at=now)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="item.edited",
        entity="item",
        entity_id=existing.id,
        project_id=existing.project_id,
        detail={"external_id": existing.external_id, "version": existing.version, "accepted_criteria": accepted},
    )
    session.commit()
    return SaveResult(existing.id, existing.external_id, existing.version, "edited")


def _edit_in_place(
    session: Session,
    draft: ItemDraft,
    existing: Item,
    content: _Content,
    stored: dict[int, Criterion],
    actor_id: int,
) -> SaveResult:
    assert existing.id is not None
    now = utcnow()
    before_lines = _render(existing, list(stored.values()))
    before = _summary(existing.model_dump(), [{"points": c.points} for c in stored.values()])
    fields = _item_fields(content)
    if draft.change_note.strip():
        fields["change_note"] = draft.change_note.strip()
    store.update_item_version(session=session, item_id=existing.id, changes=fields)
    kept: set[int] = set()
    for position, criterion in enumerate(content.criteria):
        criterion_id = criterion["criterion_id"]
        previous = stored.get(criterion_id) if criterion_id is not None else None
        row = _criterion_row(criterion, position, previous, actor_id, now)
        if previous is None or criterion_id is None:
            store.add_criterion(session=session, row={"item_id": existing.id, **row})
            continue
        kept.add(criterion_id)
        changes = {name: value for name, value in row.items() if getattr(previous, name) != value}
        store.update_criterion(session=session, criterion_id=criterion_id, changes=changes)
    removed = sorted(set(stored) - kept)
    store.delete_criteria(session=session, criterion_ids=removed)
    session.flush()
    session.expire_all()
    changed = _diff(before_lines, _render_stored(session, existing.id))
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="item.edited",
        entity="item",
        entity_id=existing.id,
        project_id=existing.project_id,
        detail={
            "external_id": existing.external_id,
            "version": existing.version,
            "before": before,
            "after": _summary(fields, content.criteria),
            "criteria_removed": removed,
            "diff": changed[:DIFF_LINES_AUDITED],
            "change_note": draft.change_note.strip() or None,
        },
    )
    session.commit()
    return SaveResult(existing.id, existing.external_id, existing.version, "edited")


def _copied_answers(session: Session, old_item_id: int, new_item_id: int, answer_key: str | None) -> list[dict]:
    rows = []
    for answer in store.list_answer_rows(session=session, item_id=old_item_id):
        correct = answer.mcq_correct
        if answer.mcq_choice and answer_key:
            correct = bool(mcq.is_correct(answer.mcq_choice, answer_key))
        rows.append(
            {
                "item_id": new_item_id,
                "model_id": answer.model_id,
                "endpoint_id": answer.endpoint_id,
                "run_id": answer.run_id,
                "text": answer.text,
                "source": answer.source,
                "slot": answer.slot,
                "content_hash": answer.content_hash,
                "external_id": answer.external_id,
                "mcq_choice": answer.mcq_choice,
                "mcq_correct": correct,
                "option_order": list(answer.option_order),
                "shuffle_seed": answer.shuffle_seed,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "latency_ms": answer.latency_ms,
                "gradings": 0,
                "created_at": answer.created_at,
            }
        )
    return rows


def _new_version(
    session: Session,
    draft: ItemDraft,
    existing: Item,
    content: _Content,
    stored: dict[int, Criterion],
    actor_id: int,
    labels_kept: int,
    reviews_kept: int,
    copy_answers: bool,
) -> SaveResult:
    assert existing.id is not None
    now = utcnow()
    store.set_current(session=session, item_id=existing.id, is_current=False)
    fields = _item_fields(content)
    version = existing.version + 1
    item_id = store.add_item_version(
        session=session,
        row={
            "project_id": existing.project_id,
            "external_id": existing.external_id,
            "kind": existing.kind,
            "version": version,
            "is_current": True,
            "status": existing.status,
            "meta_info": existing.meta_info,
            "extra": dict(existing.extra),
            "source_format": existing.source_format,
            "previous_version_id": existing.id,
            "created_at": now,
            "created_by": actor_id,
            "change_note": draft.change_note.strip() or None,
            **fields,
        },
    )
    for position, criterion in enumerate(content.criteria):
        criterion_id = criterion["criterion_id"]
        previous = stored.get(criterion_id) if criterion_id is not None else None
        row = _criterion_row(criterion, position, previous, actor_id, now)
        store.add_criterion(
            session=session,
            row={"item_id": item_id, "previous_criterion_id": criterion_id if previous else None, **row},
        )
    copied = 0
    if copy_answers:
        copied = store.add_answer_rows(
            session=session, rows=_copied_answers(session, existing.id, item_id, content.answer_key)
        )
    session.flush()
    changed = _diff(_render(existing, list(stored.values())), _render_stored(session, item_id))
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="item.new_version",
        entity="item",
        entity_id=item_id,
        project_id=existing.project_id,
        detail={
            "external_id": existing.external_id,
            "version": version,
            "previous_item_id": existing.id,
            "previous_version": existing.version,
            "before": _summary(existing.model_dump(), [{"points": c.points} for c in stored.values()]),
            "after": _summary(fields, content.criteria),
            "labels_kept": labels_kept,
            "reviews_kept": reviews_kept,
            "answers_copied": copied,
            "diff": changed[:DIFF_LINES_AUDITED],
            "change_note": draft.change_note.strip() or None,
        },
    )
    session.commit()
    return SaveResult(item_id, existing.external_id, version, "new_version", copied, labels_kept, reviews_kept)


def accept_criterion(session: Session, *, criterion_id: int, actor_id: int) -> None:
    """Accept a criterion drafted by a model, so that it counts (who and when are kept). Audited. Commits."""
    criterion = store.get_criterion(session=session, criterion_id=criterion_id)
    item = None if criterion is None else items.get_item(session=session, item_id=criterion.item_id)
    if criterion is None or item is None:
        raise EditError(["That criterion no longer exists."])
    actor = users.get_user(session=session, user_id=actor_id)
    if actor is None or not actor.active:
        raise EditError(["Only a signed-in physician, curator or admin can accept a criterion."])
    _require_editor(session, item, actor_id, actor.role)
    if not criterion.generated:
        raise EditError(["This criterion was written by a person; there is nothing to accept."])
    if criterion.accepted:
        return
    now = utcnow()
    store.accept_criterion(session=session, criterion_id=criterion_id, accepted_by=actor_id, accepted_at=now)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="criterion.accepted",
        entity="criterion",
        entity_id=criterion_id,
        project_id=item.project_id,
        detail={"item": item.external_id, "version": item.version, "text": criterion.text[:200]},
    )
    session.commit()


# --- history ------------------------------------------------------------------------------------------------


def _one_line(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").replace("\n", " ↵ ")


def render_lines(
    *,
    kind: str,
    specialties: Sequence[str],
    dimension: str | None,
    tags: Sequence[str],
    conversation: Sequence[dict[str, Any]],
    criteria: Sequence[tuple[str, int, str | None, Sequence[str], bool]],
    question: str | None,
    options: dict[str, str],
    answer_key: str | None,
    explanation: str | None,
) -> list[str]:
    """A version as readable lines to compare (criteria as (text, points, axis, other tags, counts)). Pure."""
    lines = [
        f"Specialties: {', '.join(specialties) or '-'}",
        f"Dimension: {dimension or '-'}",
        f"Tags: {', '.join(tags) or '-'}",
    ]
    if kind == "open":
        for number, turn in enumerate(conversation, 1):
            lines.append(f"Turn {number} ({turn.get('role', '')}): {_one_line(turn.get('content'))}")
        for number, (text, points, axis, other_tags, counts) in enumerate(criteria, 1):
            line = f"Criterion {number} [{points:+d}] (axis: {axis or '-'}) {_one_line(text)}"
            if other_tags:
                line += f" [tags: {', '.join(other_tags)}]"
            if not counts:
                line += " (generated, not accepted)"
            lines.append(line)
    else:
        lines.append(f"Question: {_one_line(question)}")
        lines.extend(f"Option {letter}: {_one_line(text)}" for letter, text in options.items())
        lines.append(f"Key: {answer_key or '-'}")
        if explanation:
            lines.append(f"Explanation: {_one_line(explanation)}")
    return lines


def _render(item: Item, criteria: Sequence[Criterion]) -> list[str]:
    ordered = sorted(criteria, key=lambda c: (c.position, c.id or 0))
    return render_lines(
        kind=item.kind,
        specialties=item.specialties,
        dimension=item.dimension,
        tags=item.tags,
        conversation=item.conversation,
        criteria=[(c.text, c.points, _axis_of(c), _other_tags(c.tags), c.accepted) for c in ordered],
        question=item.question,
        options=dict(item.options),
        answer_key=item.answer_key,
        explanation=item.explanation,
    )


def _render_stored(session: Session, item_id: int) -> list[str]:
    item = items.get_item(session=session, item_id=item_id)
    if item is None:
        return []
    return _render(item, items.list_criteria(session=session, item_id=item_id))


def _diff(old: Sequence[str], new: Sequence[str]) -> list[str]:
    return [line for line in difflib.ndiff(list(old), list(new)) if line.startswith(("- ", "+ "))]


def version_diff(session: Session, *, old_item_id: int, new_item_id: int) -> list[str]:
    """The lines that differ between two item versions, marked "- " (old) and "+ " (new). Read-only."""
    return _diff(_render_stored(session, old_item_id), _render_stored(session, new_item_id))


def history(session: Session, *, item_id: int) -> list[VersionEntry]:
    """Every version of the item (by external id), oldest first, each with what graded it and its diff
    against the version before. Read-only."""
    item = items.get_item(session=session, item_id=item_id)
    if item is None:
        return []
    versions = items.list_item_versions(session=session, project_id=item.project_id, external_id=item.external_id)
    names = store.user_names(session=session, user_ids=[v.created_by for v in versions if v.created_by is not None])
    entries: list[VersionEntry] = []
    previous_lines: list[str] | None = None
    for version in versions:
        assert version.id is not None
        lines = _render(version, items.list_criteria(session=session, item_id=version.id))
        use = store.version_use(session=session, item_id=version.id)
        entries.append(
            VersionEntry(
                item_id=version.id,
                version=version.version,
                status=version.status,
                is_current=version.is_current,
                created_at=version.created_at,
                author=names.get(version.created_by, "") if version.created_by is not None else "",
                change_note=version.change_note or "",
                labels=use.labels,
                gold=use.gold_labels,
                diff=[] if previous_lines is None else _diff(previous_lines, lines),
            )
        )
        previous_lines = lines
    return entries

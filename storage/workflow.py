"""Repository functions for the item workflow: what a status change or a tag edit needs to know about many
items at once, and the bulk writes (statuses, tags with content hashes, audit events)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, insert, update
from sqlalchemy import select as columns_of
from sqlmodel import Session, col, select

from storage.models import AuditEvent, Criterion, Item, ItemReview, utcnow


@dataclass(frozen=True)
class ItemState:
    """What a status change checks about one item version."""

    item_id: int
    project_id: int
    external_id: str
    kind: str
    version: int
    is_current: bool
    status: str
    options: dict[str, str]
    answer_key: str | None


def item_states(*, session: Session, item_ids: Sequence[int], lock: bool = True) -> dict[int, ItemState]:
    """The state of these item versions, by id (missing ids are absent); with `lock`, row-locked on PostgreSQL
    so that a status change decides on what it changes. Read-only."""
    if not item_ids:
        return {}
    query = columns_of(
        col(Item.id),
        col(Item.project_id),
        col(Item.external_id),
        col(Item.kind),
        col(Item.version),
        col(Item.is_current),
        col(Item.status),
        col(Item.options),
        col(Item.answer_key),
    ).where(col(Item.id).in_(list(item_ids)))
    if lock:
        query = query.with_for_update()
    return {
        int(item_id): ItemState(
            int(item_id),
            int(project_id),
            external_id,
            kind,
            int(version),
            bool(current),
            status,
            dict(options or {}),
            key,
        )
        for item_id, project_id, external_id, kind, version, current, status, options, key in session.execute(query)
    }


@dataclass(frozen=True)
class RubricFacts:
    """What approval checks about an item version's rubric."""

    positive: int  # criteria with points above 0
    unaccepted_positions: list[int]  # 0-based positions of generated criteria not accepted yet


def rubric_facts(*, session: Session, item_ids: Sequence[int]) -> dict[int, RubricFacts]:
    """Per item version (those with criteria): its positive criteria and its generated criteria that are not
    accepted. Read-only."""
    if not item_ids:
        return {}
    positive = func.sum(case((col(Criterion.points) > 0, 1), else_=0))
    counts = session.exec(
        select(Criterion.item_id, positive)
        .where(col(Criterion.item_id).in_(list(item_ids)))
        .group_by(col(Criterion.item_id))
    ).all()
    pending = session.exec(
        select(Criterion.item_id, Criterion.position)
        .where(
            col(Criterion.item_id).in_(list(item_ids)),
            col(Criterion.generated) == True,  # noqa: E712
            col(Criterion.accepted) == False,  # noqa: E712
        )
        .order_by(col(Criterion.item_id), col(Criterion.position))
    ).all()
    unaccepted: dict[int, list[int]] = {}
    for item_id, position in pending:
        unaccepted.setdefault(int(item_id), []).append(int(position))
    return {int(item_id): RubricFacts(int(count or 0), unaccepted.get(int(item_id), [])) for item_id, count in counts}


def submitted_review_counts(*, session: Session, item_ids: Sequence[int]) -> dict[int, int]:
    """Submitted item reviews per item version (versions without any are absent). Read-only."""
    if not item_ids:
        return {}
    query = (
        select(ItemReview.item_id, func.count())
        .where(col(ItemReview.item_id).in_(list(item_ids)), ItemReview.status == "submitted")
        .group_by(col(ItemReview.item_id))
    )
    return {int(item_id): int(count) for item_id, count in session.exec(query).all()}


def set_status(*, session: Session, item_ids: Sequence[int], status: str, was: str) -> int:
    """Move item versions that are in status `was` to `status`; returns how many moved."""
    if not item_ids:
        return 0
    statement = update(Item).where(col(Item.id).in_(list(item_ids)), col(Item.status) == was).values(status=status)
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaggableItem:
    """An item version's content, as its content hash covers it."""

    item_id: int
    project_id: int
    external_id: str
    version: int
    is_current: bool
    kind: str
    conversation: list[dict[str, Any]]
    question: str | None
    options: dict[str, str]
    answer_key: str | None
    explanation: str | None
    meta_info: str | None
    specialties: list[str]
    dimension: str | None
    tags: list[str]
    extra: dict[str, Any]
    criteria: list[tuple[str, int, list[str]]]  # (text, points, tags) in position order


def taggable_items(*, session: Session, item_ids: Sequence[int]) -> list[TaggableItem]:
    """These item versions with everything their content hash covers, by id; row-locked on PostgreSQL.
    Read-only."""
    if not item_ids:
        return []
    rows = session.exec(
        select(Item).where(col(Item.id).in_(list(item_ids))).order_by(col(Item.id)).with_for_update()
    ).all()
    criteria: dict[int, list[tuple[str, int, list[str]]]] = {}
    query = (
        select(Criterion.item_id, Criterion.text, Criterion.points, Criterion.tags)
        .where(col(Criterion.item_id).in_(list(item_ids)))
        .order_by(col(Criterion.item_id), col(Criterion.position), col(Criterion.id))
    )
    for item_id, text, points, tags in session.exec(query).all():
        criteria.setdefault(int(item_id), []).append((text, int(points), list(tags or [])))
    return [
        TaggableItem(
            item_id=int(item.id or 0),
            project_id=item.project_id,
            external_id=item.external_id,
            version=item.version,
            is_current=item.is_current,
            kind=item.kind,
            conversation=list(item.conversation or []),
            question=item.question,
            options=dict(item.options or {}),
            answer_key=item.answer_key,
            explanation=item.explanation,
            meta_info=item.meta_info,
            specialties=list(item.specialties or []),
            dimension=item.dimension,
            tags=list(item.tags or []),
            extra=dict(item.extra or {}),
            criteria=criteria.get(int(item.id or 0), []),
        )
        for item in rows
    ]


def set_tags(*, session: Session, changes: Sequence[tuple[int, list[str], str]]) -> None:
    """Store new tags and content hashes: (item id, tags, content hash) per item version, in one statement."""
    if not changes:
        return
    table = Item.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("item_id"))
        .values(tags=bindparam("new_tags", type_=table.c.tags.type), content_hash=bindparam("new_hash"))
    )
    session.execute(
        statement,
        [{"item_id": item_id, "new_tags": tags, "new_hash": content_hash} for item_id, tags, content_hash in changes],
    )


def add_audit_events(*, session: Session, actor_id: int | None, events: Sequence[dict[str, Any]]) -> int:
    """Insert audit events in one statement, each {action, entity, entity_id, project_id, detail}, by one
    actor at one time; returns how many."""
    if not events:
        return 0
    now = utcnow()
    rows = [
        {
            "at": now,
            "actor_id": actor_id,
            "action": event["action"],
            "entity": event["entity"],
            "entity_id": event.get("entity_id"),
            "project_id": event.get("project_id"),
            "detail": event.get("detail") or {},
        }
        for event in events
    ]
    session.execute(insert(AuditEvent.__table__), rows)  # type: ignore[attr-defined]
    return len(rows)

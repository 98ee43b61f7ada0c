"""The audit trail: who did what, when, to which thing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import AuditEvent


def add_audit_event(
    *,
    session: Session,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: int | None = None,
    project_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one audit event in the session's transaction."""
    event = AuditEvent(
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        project_id=project_id,
        detail=detail or {},
    )
    session.add(event)
    return event


def list_audit_events(
    *, session: Session, entity: str | None = None, entity_id: int | None = None, limit: int = 200
) -> Sequence[AuditEvent]:
    """Newest audit events first, optionally for one entity. Read-only."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if entity is not None:
        query = query.where(AuditEvent.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    return session.exec(query).all()


def any_event_since(*, session: Session, project_id: int, actions: Sequence[str], since: datetime) -> bool:
    """True when the project has an audit event of one of these actions at or after `since`. Read-only."""
    query = (
        select(AuditEvent.id)
        .where(
            AuditEvent.project_id == project_id,
            col(AuditEvent.action).in_(list(actions)),
            col(AuditEvent.at) >= since,
        )
        .limit(1)
    )
    return session.exec(query).first() is not None

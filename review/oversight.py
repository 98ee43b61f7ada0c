"""Use cases for curators and admins watching grading: progress per physician and per item, leases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from review.grading import GradingError, as_utc
from storage import projects, work
from storage.models import utcnow


@dataclass(frozen=True)
class PhysicianProgress:
    username: str
    submitted: int
    today: int
    drafts: int


@dataclass(frozen=True)
class ItemProgress:
    external_id: str
    answers: int
    gradings: int
    needed: int  # answers x overlap

    @property
    def done(self) -> bool:
        return self.gradings >= self.needed


@dataclass(frozen=True)
class Lease:
    assignment_id: int
    username: str
    answer_id: int
    leased_at: str
    expires_at: str


def physician_progress(session: Session, *, project_id: int) -> list[PhysicianProgress]:
    """Gradings per physician in the project: submitted, submitted today, drafts. Read-only."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        PhysicianProgress(name, submitted, today, drafts)
        for name, submitted, today, drafts in work.gradings_by_physician(
            session=session, project_id=project_id, since=midnight
        )
    ]


def item_progress(session: Session, *, project_id: int) -> list[ItemProgress]:
    """Gradings per item against what the overlap asks for. Read-only."""
    project = projects.get_project(session=session, project_id=project_id)
    if project is None:
        raise GradingError("That project no longer exists.")
    return [
        ItemProgress(external_id, answers, gradings, answers * project.overlap)
        for external_id, answers, gradings in work.gradings_by_item(session=session, project_id=project_id)
    ]


def live_leases(session: Session, *, project_id: int) -> list[Lease]:
    """Answers reserved right now, by whom and until when (UTC). Read-only."""
    rows = work.list_leases(session=session, project_id=project_id, now=utcnow())
    stamp = "%Y-%m-%d %H:%M"
    return [
        Lease(
            assignment_id=a.id or 0,
            username=name,
            answer_id=a.answer_id or 0,
            leased_at=(as_utc(a.leased_at) or utcnow()).strftime(stamp),
            expires_at=(as_utc(a.lease_expires_at) or utcnow()).strftime(stamp),
        )
        for a, name in rows
    ]

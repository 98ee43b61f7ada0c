"""Repository queries about work waiting: answers still needing gradings, drafts."""

from __future__ import annotations

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from storage.models import Annotation, Answer, Item


def count_answers_needing_grading(
    *, session: Session, project_id: int, overlap: int, user_id: int | None = None
) -> int:
    """Answers to current approved open items with fewer than `overlap` submitted gradings
    (and, given a user, not graded or drafted by them). Read-only."""
    submitted = (
        select(Annotation.answer_id, func.count().label("n"))
        .where(Annotation.status == "submitted")
        .group_by(col(Annotation.answer_id))
        .subquery()
    )
    query = (
        select(func.count())
        .select_from(Answer)
        .join(Item, col(Item.id) == Answer.item_id)
        .outerjoin(submitted, submitted.c.answer_id == Answer.id)
        .where(
            Item.project_id == project_id,
            Item.is_current == True,  # noqa: E712
            Item.status == "approved",
            Item.kind == "open",
            func.coalesce(submitted.c.n, 0) < overlap,
        )
    )
    if user_id is not None:
        mine = select(Annotation.answer_id).where(Annotation.rater_id == user_id)
        query = query.where(col(Answer.id).not_in(mine))
    return int(session.exec(query).one())


def count_fully_graded_answers(*, session: Session, project_id: int, overlap: int) -> int:
    """Answers to current open items with at least `overlap` submitted gradings. Read-only."""
    submitted = (
        select(Annotation.answer_id, func.count().label("n"))
        .where(Annotation.status == "submitted")
        .group_by(col(Annotation.answer_id))
        .subquery()
    )
    query = (
        select(func.count())
        .select_from(Answer)
        .join(Item, col(Item.id) == Answer.item_id)
        .join(submitted, and_(submitted.c.answer_id == Answer.id, submitted.c.n >= overlap))
        .where(Item.project_id == project_id, Item.is_current == True)  # noqa: E712
    )
    return int(session.exec(query).one())


def count_drafts(*, session: Session, user_id: int) -> int:
    """The user's gradings started but not submitted. Read-only."""
    query = (
        select(func.count()).select_from(Annotation).where(Annotation.rater_id == user_id, Annotation.status == "draft")
    )
    return int(session.exec(query).one())

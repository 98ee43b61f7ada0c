"""Repository functions for the item editor: what graded an item version, writing versions and criteria,
copying answers to a new version, and the names shown in an item's history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, update
from sqlmodel import Session, col, select

from storage.models import (
    Annotation,
    Answer,
    Comparison,
    Criterion,
    CriterionLabel,
    GoldLabel,
    Item,
    ItemReview,
    ItemVerdict,
    RunFailure,
    User,
)


@dataclass(frozen=True)
class VersionUse:
    """Everything that graded (or began grading) one item version."""

    criterion_labels: int = 0
    annotations: int = 0  # gradings of its answers, drafts and judge gradings included
    gold_labels: int = 0  # current gold labels of its units
    gold_versions: int = 0  # every gold label version of its units, current or not
    item_reviews: int = 0
    comparisons: int = 0
    verdicts: int = 0
    judge_failures: int = 0  # judge attempts recorded against its criteria

    @property
    def labels(self) -> int:
        """Criterion labels a physician, an imported rater or a judge gave this version (side by side included)."""
        return self.criterion_labels

    @property
    def graded(self) -> bool:
        """True when anything refers to this version's answers or criteria as they are."""
        return any(
            (
                self.criterion_labels,
                self.annotations,
                self.gold_versions,
                self.item_reviews,
                self.comparisons,
                self.verdicts,
                self.judge_failures,
            )
        )


def _count(session: Session, query: Any) -> int:
    return int(session.exec(query).one() or 0)


def version_use(*, session: Session, item_id: int) -> VersionUse:
    """Count what graded one item version (labels, gradings, gold, reviews, comparisons, verdicts). Read-only."""
    criteria = select(Criterion.id).where(Criterion.item_id == item_id)
    answers = select(Answer.id).where(Answer.item_id == item_id)
    return VersionUse(
        criterion_labels=_count(
            session,
            select(func.count()).select_from(CriterionLabel).where(col(CriterionLabel.criterion_id).in_(criteria)),
        ),
        annotations=_count(
            session, select(func.count()).select_from(Annotation).where(col(Annotation.answer_id).in_(answers))
        ),
        gold_labels=_count(
            session,
            select(func.count())
            .select_from(GoldLabel)
            .where(col(GoldLabel.criterion_id).in_(criteria), GoldLabel.is_current == True),  # noqa: E712
        ),
        gold_versions=_count(
            session, select(func.count()).select_from(GoldLabel).where(col(GoldLabel.criterion_id).in_(criteria))
        ),
        item_reviews=_count(session, select(func.count()).select_from(ItemReview).where(ItemReview.item_id == item_id)),
        comparisons=_count(session, select(func.count()).select_from(Comparison).where(Comparison.item_id == item_id)),
        verdicts=_count(session, select(func.count()).select_from(ItemVerdict).where(ItemVerdict.item_id == item_id)),
        judge_failures=_count(
            session, select(func.count()).select_from(RunFailure).where(col(RunFailure.criterion_id).in_(criteria))
        ),
    )


def count_answers(*, session: Session, item_id: int) -> int:
    """How many answers an item version has. Read-only."""
    return _count(session, select(func.count()).select_from(Answer).where(Answer.item_id == item_id))


def external_ids_with_prefix(*, session: Session, project_id: int, prefix: str) -> list[str]:
    """The project's external ids that start with the prefix (every version). Read-only."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(Item.external_id)
        .where(Item.project_id == project_id, col(Item.external_id).like(escaped + "%", escape="\\"))
        .distinct()
    )
    return list(session.exec(query).all())


def external_id_in_use(*, session: Session, project_id: int, external_id: str) -> bool:
    """True when some version of an item in the project has this external id. Read-only."""
    query = select(Item.id).where(Item.project_id == project_id, Item.external_id == external_id).limit(1)
    return session.exec(query).first() is not None


def current_item_choices(*, session: Session, project_id: int) -> list[tuple[int, str, str]]:
    """(item id, external id, kind) of the project's current items, by external id. Read-only."""
    query = (
        select(Item.id, Item.external_id, Item.kind)
        .where(Item.project_id == project_id, Item.is_current == True)  # noqa: E712
        .order_by(col(Item.external_id))
    )
    return [(int(item_id or 0), external_id, kind) for item_id, external_id, kind in session.exec(query).all()]


def add_item_version(*, session: Session, row: dict[str, Any]) -> int:
    """Insert one item version row and return its id."""
    item = Item(**row)
    session.add(item)
    session.flush()
    assert item.id is not None
    return item.id


def update_item_version(*, session: Session, item_id: int, changes: dict[str, Any]) -> None:
    """Change columns of one item version in place."""
    if changes:
        session.execute(update(Item).where(col(Item.id) == item_id).values(**changes))


def set_current(*, session: Session, item_id: int, is_current: bool) -> None:
    """Mark one item version current or not."""
    session.execute(update(Item).where(col(Item.id) == item_id).values(is_current=is_current))


def add_criterion(*, session: Session, row: dict[str, Any]) -> int:
    """Insert one rubric criterion and return its id."""
    criterion = Criterion(**row)
    session.add(criterion)
    session.flush()
    assert criterion.id is not None
    return criterion.id


def update_criterion(*, session: Session, criterion_id: int, changes: dict[str, Any]) -> None:
    """Change columns of one rubric criterion."""
    if changes:
        session.execute(update(Criterion).where(col(Criterion.id) == criterion_id).values(**changes))


def delete_criteria(*, session: Session, criterion_ids: Sequence[int]) -> int:
    """Delete rubric criteria (of a version nothing has graded); return how many."""
    if not criterion_ids:
        return 0
    result = session.execute(delete(Criterion).where(col(Criterion.id).in_(list(criterion_ids))))
    return int(getattr(result, "rowcount", 0) or 0)


def get_criterion(*, session: Session, criterion_id: int) -> Criterion | None:
    """One rubric criterion, or None. Read-only."""
    return session.get(Criterion, criterion_id)


def accept_criterion(*, session: Session, criterion_id: int, accepted_by: int, accepted_at: datetime) -> None:
    """Mark a generated criterion accepted by a physician."""
    session.execute(
        update(Criterion)
        .where(col(Criterion.id) == criterion_id)
        .values(accepted=True, accepted_by=accepted_by, accepted_at=accepted_at)
    )


def list_answer_rows(*, session: Session, item_id: int) -> list[Answer]:
    """The answers of one item version, oldest first. Read-only."""
    return list(session.exec(select(Answer).where(Answer.item_id == item_id).order_by(col(Answer.id))).all())


def add_answer_rows(*, session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert answer rows (each with the same keys); return how many."""
    if rows:
        session.execute(insert(Answer.__table__), list(rows))  # type: ignore[attr-defined]
    return len(rows)


def user_names(*, session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """Display names (or usernames) of these users. Read-only."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return {}
    query = select(User.id, User.display_name, User.username).where(col(User.id).in_(wanted))
    return {int(user_id or 0): name or username for user_id, name, username in session.exec(query).all()}

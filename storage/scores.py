"""Repository queries that feed model scores: the answers to a project's open items with their model, the
rubric of each item, the labels that score an answer (current gold labels, or one rater's labels such as a
judge configuration's), and the project's submitted side-by-side comparisons with the model of each answer.

Scored items are the project's current open items that are not retired; their criteria are the accepted
ones (a criterion drafted by a model counts once a physician accepts it), as a judge run grades them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as columns_of
from sqlmodel import Session, col

from storage.models import Answer, Comparison, Criterion, CriterionLabel, GoldLabel, Item, Model

CHUNK = 500  # ids per IN (...) list, well under every database's parameter limit
LABEL_VALUES = ("met", "not_met")


def _chunks(values: Iterable[int], size: int = CHUNK) -> Iterable[list[int]]:
    listed = sorted(set(values))
    for start in range(0, len(listed), size):
        yield listed[start : start + size]


def _scored_items(project_id: int, item_version: int | None = None) -> Any:
    """Ids of the project's open items that are not retired: their current versions, or when `item_version` is
    given the versions with that number (current or not)."""
    version = col(Item.is_current).is_(True) if item_version is None else col(Item.version) == item_version
    return columns_of(col(Item.id)).where(
        col(Item.project_id) == project_id,
        col(Item.kind) == "open",
        version,
        col(Item.status) != "retired",
    )


def item_versions(*, session: Session, project_id: int) -> list[int]:
    """The version numbers of the project's open items, ascending. Read-only."""
    query = (
        columns_of(col(Item.version))
        .where(col(Item.project_id) == project_id, col(Item.kind) == "open")
        .distinct()
        .order_by(col(Item.version))
    )
    return [int(version) for (version,) in session.execute(query).all()]


@dataclass(frozen=True)
class ScoredAnswer:
    """An answer to a scored item: its item, the item's tags (e.g. theme:*), its model and when it was
    stored."""

    answer_id: int
    item_id: int
    external_id: str
    item_tags: tuple[str, ...]
    model: str
    created_at: datetime | None


def open_answers(*, session: Session, project_id: int, item_version: int | None = None) -> list[ScoredAnswer]:
    """Every answer to the project's scored items with its model, by model, item, then oldest first.
    Read-only."""
    query = (
        columns_of(
            col(Answer.id),
            col(Item.id),
            col(Item.external_id),
            col(Item.tags),
            col(Model.name),
            col(Answer.created_at),
        )
        .join(Item, col(Item.id) == Answer.item_id)
        .join(Model, col(Model.id) == Answer.model_id)
        .where(col(Answer.item_id).in_(_scored_items(project_id, item_version)))
        .order_by(col(Model.name), col(Item.id), col(Answer.created_at), col(Answer.id))
    )
    return [
        ScoredAnswer(int(answer_id), int(item_id), external_id, tuple(tags or ()), model, created_at)
        for answer_id, item_id, external_id, tags, model, created_at in session.execute(query).all()
    ]


@dataclass(frozen=True)
class RubricCriterion:
    """One accepted criterion of a scored item: its points and tags (with its axis as an axis:* tag)."""

    criterion_id: int
    item_id: int
    points: int
    tags: tuple[str, ...]


def rubric_criteria(*, session: Session, project_id: int, item_version: int | None = None) -> list[RubricCriterion]:
    """The accepted criteria of the project's scored items, by item then position. Read-only."""
    query = (
        columns_of(col(Criterion.id), col(Criterion.item_id), col(Criterion.points), col(Criterion.tags))
        .add_columns(col(Criterion.axis))
        .where(col(Criterion.item_id).in_(_scored_items(project_id, item_version)), col(Criterion.accepted).is_(True))
        .order_by(col(Criterion.item_id), col(Criterion.position), col(Criterion.id))
    )
    rows = []
    for criterion_id, item_id, points, tags, axis in session.execute(query).all():
        listed = list(tags or ())
        if axis and not any(tag.startswith("axis:") for tag in listed):
            listed.append(f"axis:{axis}")
        rows.append(RubricCriterion(int(criterion_id), int(item_id), int(points), tuple(listed)))
    return rows


def gold_values(*, session: Session, project_id: int, item_version: int | None = None) -> dict[tuple[int, int], bool]:
    """Map (answer id, criterion id) → met, for the current gold labels of the project's scored items.
    Read-only."""
    query = (
        columns_of(col(GoldLabel.answer_id), col(GoldLabel.criterion_id), col(GoldLabel.value))
        .join(Answer, col(Answer.id) == GoldLabel.answer_id)
        .where(
            col(Answer.item_id).in_(_scored_items(project_id, item_version)),
            col(GoldLabel.is_current).is_(True),
            col(GoldLabel.value).in_(LABEL_VALUES),
        )
    )
    return {(int(a), int(c)): value == "met" for a, c, value in session.execute(query).all()}


def rater_values(
    *, session: Session, project_id: int, rater_id: int, item_version: int | None = None
) -> dict[tuple[int, int], bool]:
    """Map (answer id, criterion id) → met, for one rater's met / not met labels (a judge configuration's
    rater, say) on the project's scored items; "unsure" is left out. Read-only."""
    query = (
        columns_of(col(CriterionLabel.answer_id), col(CriterionLabel.criterion_id), col(CriterionLabel.value))
        .join(Answer, col(Answer.id) == CriterionLabel.answer_id)
        .where(
            col(Answer.item_id).in_(_scored_items(project_id, item_version)),
            col(CriterionLabel.rater_id) == rater_id,
            col(CriterionLabel.value).in_(LABEL_VALUES),
        )
    )
    return {(int(a), int(c)): value == "met" for a, c, value in session.execute(query).all()}


@dataclass(frozen=True)
class ComparisonRow:
    """A submitted side-by-side comparison: the answers in the column order shown, the preference (a column
    letter or "tie") and the preferred answer (None for a tie)."""

    comparison_id: int
    item_id: int
    answer_ids: tuple[int, ...]
    preference: str | None
    preferred_answer_id: int | None


def submitted_comparisons(*, session: Session, project_id: int) -> list[ComparisonRow]:
    """The project's submitted side-by-side comparisons, by id. Read-only."""
    query = (
        columns_of(
            col(Comparison.id),
            col(Comparison.item_id),
            col(Comparison.answer_ids),
            col(Comparison.preference),
            col(Comparison.preferred_answer_id),
        )
        .where(col(Comparison.project_id) == project_id, col(Comparison.status) == "submitted")
        .order_by(col(Comparison.id))
    )
    return [
        ComparisonRow(int(cid), int(item_id), tuple(int(a) for a in answer_ids or ()), preference, preferred)
        for cid, item_id, answer_ids, preference, preferred in session.execute(query).all()
    ]


def answer_models(*, session: Session, answer_ids: Iterable[int]) -> dict[int, str]:
    """Map answer id → the name of its model, for these answers. Read-only."""
    models: dict[int, str] = {}
    for chunk in _chunks(answer_ids):
        query = (
            columns_of(col(Answer.id), col(Model.name))
            .join(Model, col(Model.id) == Answer.model_id)
            .where(col(Answer.id).in_(chunk))
        )
        models.update({int(answer_id): name for answer_id, name in session.execute(query).all()})
    return models

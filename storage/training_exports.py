"""Repository functions for training data and the data card: gold-labelled units with their prompts, the
raters' comments, submitted side-by-side preferences, and a project's counts. All read-only.

Training data comes from the current versions of a project's open items that are not retired, read page by
page (keyset on external id and version) so an export never holds more than a page of items at a time.
Labels that count are those of submitted gradings by physicians and imported raters (never a judge's), as
for gold labels. Every query has a total order, so the same database always gives the same rows in the same
order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from storage.exports import counted_labels, items_after
from storage.gold import RATER_KINDS
from storage.models import (
    Annotation,
    Answer,
    Comparison,
    Criterion,
    CriterionLabel,
    GoldLabel,
    Item,
    JudgeConfig,
    Model,
    Project,
    User,
)

CHUNK = 500  # ids per IN (...) list, well under every database's parameter limit
RETIRED = "retired"
HASH_BATCH = 5000  # rows fetched at a time when hashing a project's content


def _chunks(values: Iterable[int], size: int = CHUNK) -> Iterable[list[int]]:
    listed = sorted(set(values))
    for start in range(0, len(listed), size):
        yield listed[start : start + size]


def _training_items() -> Any:
    """Current, not retired, open items (the items training data is drawn from)."""
    return and_(
        col(Item.is_current) == True,  # noqa: E712
        col(Item.kind) == "open",
        col(Item.status) != RETIRED,
    )


# --- items and gold units --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingItem:
    """One item a training row is drawn from: its ids and conversation."""

    item_id: int
    external_id: str
    version: int
    conversation: list[dict[str, Any]]


def training_items_page(
    *, session: Session, project_id: int, after: tuple[str, int] | None, limit: int
) -> list[TrainingItem]:
    """The next `limit` current, not retired, open items of the project after (external id, version), ordered
    by external id then version. Read-only."""
    query = sa_select(col(Item.id), col(Item.external_id), col(Item.version), col(Item.conversation)).where(
        col(Item.project_id) == project_id, _training_items()
    )
    query = items_after(query, after, limit)
    return [TrainingItem(int(i), e, int(v), list(c or [])) for i, e, v, c in session.execute(query).all()]


@dataclass(frozen=True)
class GoldUnitPrompt:
    """A unit (answer, criterion) with a current gold label, and what its grading prompt needs."""

    item_id: int
    answer_id: int
    answer_text: str
    criterion_id: int
    criterion_text: str
    points: int
    value: str  # met | not_met
    method: str
    rationale: str


def gold_unit_prompts(*, session: Session, item_ids: Iterable[int]) -> list[GoldUnitPrompt]:
    """The units with a current gold label on answers to these items, ordered by item, answer, criterion
    position and criterion id. Read-only."""
    found: list[GoldUnitPrompt] = []
    for chunk in _chunks(item_ids):
        query = (
            sa_select(
                col(Answer.item_id),
                col(Answer.id),
                col(Answer.text),
                col(Criterion.id),
                col(Criterion.text),
                col(Criterion.points),
                col(GoldLabel.value),
                col(GoldLabel.method),
                col(GoldLabel.rationale),
            )
            .join(Answer, col(Answer.id) == GoldLabel.answer_id)
            .join(Criterion, col(Criterion.id) == GoldLabel.criterion_id)
            .where(
                col(GoldLabel.is_current) == True,  # noqa: E712
                col(Answer.item_id).in_(chunk),
                col(Criterion.item_id) == Answer.item_id,
            )
            .order_by(col(Answer.item_id), col(Answer.id), col(Criterion.position), col(Criterion.id))
        )
        found.extend(
            GoldUnitPrompt(int(i), int(a), text or "", int(c), ctext or "", int(points), value, method, rationale or "")
            for i, a, text, c, ctext, points, value, method, rationale in session.execute(query).all()
        )
    return found


@dataclass(frozen=True)
class LabelComment:
    """A counted label's comment on one unit."""

    answer_id: int
    criterion_id: int
    rater_id: int
    value: str
    comment: str


def label_comments(*, session: Session, answer_ids: Iterable[int]) -> list[LabelComment]:
    """The non-empty comments on counted labels (submitted gradings by physicians and imported raters) of
    these answers, ordered by answer, criterion and rater id. Read-only."""
    found: list[LabelComment] = []
    for chunk in _chunks(answer_ids):
        query = counted_labels(col(CriterionLabel.answer_id).in_(chunk), col(CriterionLabel.comment) != "").order_by(
            col(CriterionLabel.answer_id), col(CriterionLabel.criterion_id), col(CriterionLabel.rater_id)
        )
        found.extend(
            LabelComment(int(a), int(c), int(r), value, comment) for a, c, r, value, comment in session.execute(query)
        )
    return found


def judge_template(*, session: Session, config_id: int) -> str | None:
    """The grader prompt template of a judge configuration version, or None when there is none. Read-only."""
    config = session.get(JudgeConfig, config_id)
    return None if config is None else config.prompt_template


# --- side-by-side preferences ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmittedComparison:
    """A submitted side-by-side comparison: its answers in column order and the preferred one (None: a tie)."""

    comparison_id: int
    item_id: int
    answer_ids: list[int]
    preference: str | None
    preferred_answer_id: int | None


def submitted_comparisons(*, session: Session, project_id: int) -> list[SubmittedComparison]:
    """The submitted comparisons on current, not retired, open items of the project, ordered by item external
    id, item version and comparison id. Read-only."""
    query = (
        sa_select(
            col(Comparison.id),
            col(Comparison.item_id),
            col(Comparison.answer_ids),
            col(Comparison.preference),
            col(Comparison.preferred_answer_id),
        )
        .join(Item, col(Item.id) == Comparison.item_id)
        .where(col(Comparison.project_id) == project_id, col(Comparison.status) == "submitted", _training_items())
        .order_by(col(Item.external_id), col(Item.version), col(Comparison.id))
    )
    return [
        SubmittedComparison(int(c), int(i), [int(a) for a in answers or []], preference, None if p is None else int(p))
        for c, i, answers, preference, p in session.execute(query).all()
    ]


def item_conversations(*, session: Session, item_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The conversation of each of these items. Read-only."""
    found: dict[int, list[dict[str, Any]]] = {}
    for chunk in _chunks(item_ids):
        query = sa_select(col(Item.id), col(Item.conversation)).where(col(Item.id).in_(chunk))
        found.update((int(i), list(conversation or [])) for i, conversation in session.execute(query).all())
    return found


def answer_texts(*, session: Session, answer_ids: Iterable[int]) -> dict[int, str]:
    """The text of each of these answers. Read-only."""
    found: dict[int, str] = {}
    for chunk in _chunks(answer_ids):
        query = sa_select(col(Answer.id), col(Answer.text)).where(col(Answer.id).in_(chunk))
        found.update((int(a), text or "") for a, text in session.execute(query).all())
    return found


# --- the data card -----------------------------------------------------------------------------------------


def get_project(*, session: Session, project_id: int) -> Project | None:
    """The project with this id, or None. Read-only."""
    return session.get(Project, project_id)


def item_counts(*, session: Session, project_id: int) -> list[tuple[str, str, int]]:
    """Current item versions of the project per (kind, status), ordered by kind then status. Read-only."""
    query = (
        sa_select(col(Item.kind), col(Item.status), func.count())
        .where(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
        .group_by(col(Item.kind), col(Item.status))
        .order_by(col(Item.kind), col(Item.status))
    )
    return [(kind, status, int(n)) for kind, status, n in session.execute(query).all()]


def item_specialty_lists(*, session: Session, project_id: int) -> list[list[str]]:
    """The specialty list of each current item version of the project, in item id order. Read-only."""
    query = (
        sa_select(col(Item.specialties))
        .where(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
        .order_by(col(Item.id))
    )
    return [list(specialties or []) for (specialties,) in session.execute(query).all()]


def answers_per_model(*, session: Session, project_id: int) -> list[tuple[str, int]]:
    """Answers to current item versions of the project per model name, ordered by name. Read-only."""
    query = (
        sa_select(col(Model.name), func.count())
        .select_from(Answer)
        .join(Item, col(Item.id) == Answer.item_id)
        .join(Model, col(Model.id) == Answer.model_id)
        .where(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
        .group_by(col(Model.name))
        .order_by(col(Model.name))
    )
    return [(name, int(n)) for name, n in session.execute(query).all()]


def _project_labels(project_id: int) -> Any:
    """Criterion labels of submitted gradings on answers to current item versions of the project."""
    return (
        sa_select(
            col(CriterionLabel.answer_id),
            col(CriterionLabel.criterion_id),
            col(CriterionLabel.rater_id),
            col(User.kind).label("kind"),
        )
        .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
        .join(User, col(User.id) == CriterionLabel.rater_id)
        .join(Answer, col(Answer.id) == CriterionLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .where(
            col(Item.project_id) == project_id,
            col(Item.is_current) == True,  # noqa: E712
            col(Annotation.status) == "submitted",
        )
    )


def label_counts_by_kind(*, session: Session, project_id: int) -> list[tuple[str, int, int]]:
    """Submitted criterion labels in the project per rater kind (human, imported, judge): (kind, labels,
    raters), ordered by kind. Read-only."""
    labels = _project_labels(project_id).subquery()
    query = (
        sa_select(labels.c.kind, func.count(), func.count(func.distinct(labels.c.rater_id)))
        .group_by(labels.c.kind)
        .order_by(labels.c.kind)
    )
    return [(kind, int(n), int(raters)) for kind, n, raters in session.execute(query).all()]


def labels_per_unit(*, session: Session, project_id: int) -> list[tuple[int, int]]:
    """How many units (answer, criterion) have each number of counted labels (physicians and imported raters):
    (labels, units), ordered by labels. Read-only."""
    labels = _project_labels(project_id).where(col(User.kind).in_(RATER_KINDS)).subquery()
    per_unit = (
        sa_select(func.count().label("n"))
        .select_from(labels)
        .group_by(labels.c.answer_id, labels.c.criterion_id)
        .subquery()
    )
    query = sa_select(per_unit.c.n, func.count()).group_by(per_unit.c.n).order_by(per_unit.c.n)
    return [(int(n), int(units)) for n, units in session.execute(query).all()]


def physician_specialties(*, session: Session, project_id: int) -> list[list[str]]:
    """The specialty list of each physician (rater kind human) with a submitted label in the project, in user
    id order. Read-only."""
    labels = _project_labels(project_id).where(col(User.kind) == "human").subquery()
    query = (
        sa_select(col(User.specialties)).where(col(User.id).in_(sa_select(labels.c.rater_id))).order_by(col(User.id))
    )
    return [list(specialties or []) for (specialties,) in session.execute(query).all()]


def gold_counts_by_method(*, session: Session, project_id: int) -> list[tuple[str, str, int]]:
    """Current gold labels on answers to current item versions of the project per (method, value), ordered by
    method then value. Read-only."""
    query = (
        sa_select(col(GoldLabel.method), col(GoldLabel.value), func.count())
        .join(Answer, col(Answer.id) == GoldLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .where(
            col(Item.project_id) == project_id,
            col(Item.is_current) == True,  # noqa: E712
            col(GoldLabel.is_current) == True,  # noqa: E712
        )
        .group_by(col(GoldLabel.method), col(GoldLabel.value))
        .order_by(col(GoldLabel.method), col(GoldLabel.value))
    )
    return [(method, value, int(n)) for method, value, n in session.execute(query).all()]


def comparison_counts(*, session: Session, project_id: int) -> tuple[int, int]:
    """Submitted side-by-side comparisons in the project: (all, ties). Read-only."""
    ties = func.sum(case((col(Comparison.preference) == "tie", 1), else_=0))
    query = sa_select(func.count(), ties).where(
        col(Comparison.project_id) == project_id, col(Comparison.status) == "submitted"
    )
    total, ties = session.execute(query).one()
    return int(total or 0), int(ties or 0)


def content_rows(*, session: Session, project_id: int) -> Iterator[Sequence[Any]]:
    """The project's exported content as rows in a total order, fetched in batches: first each current item
    version ("item", external id, version, kind, status, content hash), then each current gold label ("gold",
    item external id, item version, model name, answer content hash, shuffle seed, criterion position,
    criterion text, points, value, method, rationale, disagreement category). Read-only."""
    items = (
        sa_select(col(Item.external_id), col(Item.version), col(Item.kind), col(Item.status), col(Item.content_hash))
        .where(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
        .order_by(col(Item.external_id), col(Item.version), col(Item.id))
        .execution_options(yield_per=HASH_BATCH)
    )
    for row in session.execute(items):
        yield ("item", *row)
    golds = (
        sa_select(
            col(Item.external_id),
            col(Item.version),
            col(Model.name),
            col(Answer.content_hash),
            col(Answer.shuffle_seed),
            col(Criterion.position),
            col(Criterion.text),
            col(Criterion.points),
            col(GoldLabel.value),
            col(GoldLabel.method),
            col(GoldLabel.rationale),
            col(GoldLabel.disagreement_category),
        )
        .join(Answer, col(Answer.id) == GoldLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .join(Model, col(Model.id) == Answer.model_id)
        .join(Criterion, col(Criterion.id) == GoldLabel.criterion_id)
        .where(
            col(Item.project_id) == project_id,
            col(Item.is_current) == True,  # noqa: E712
            col(GoldLabel.is_current) == True,  # noqa: E712
        )
        .order_by(
            col(Item.external_id),
            col(Item.version),
            col(Model.name),
            col(Answer.content_hash),
            col(Answer.id),
            col(Criterion.position),
            col(Criterion.id),
        )
        .execution_options(yield_per=HASH_BATCH)
    )
    for row in session.execute(golds):
        yield ("gold", *row)

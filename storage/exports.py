"""Repository functions for exports: the project's current open items page by page, their rubrics, the
current gold labels and the counted labels of their units, the answers, and the raters. All read-only.

The HealthBench and meta-eval exports read bounded pages: items by keyset on (external id, version), units and
labels by lists of ids of at most CHUNK values. The gold export streams instead: three reads ordered the same way
(item external id, item version, criterion position, criterion id, answer id) run side by side on the database
driver's own cursors (server-side on PostgreSQL), FETCH rows at a time: the gold units with their criteria and
their counted labels gathered into one text (from the index ix_label_unit_rater, never the label rows), the
answers with their items, and the labels that carry a comment (from the partial index ix_label_commented, so a
project with few comments reads few rows). Either way an export of a million rows never holds more than a page at
a time.
Labels that count are those of submitted gradings by physicians and imported raters (never a judge's),
as for gold labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, and_, cast, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from storage.gold import RATER_KINDS
from storage.models import Annotation, Answer, Criterion, CriterionLabel, GoldLabel, Item, Model, User

CHUNK = 500  # ids per IN (...) list, well under every database's parameter limit


def _rows(session: Session, query: Any) -> Any:
    """Run a query on the session's connection (Core rows, no ORM bookkeeping: exports read millions)."""
    return session.connection().execute(query)


def _json(column: Any) -> Any:
    """A JSON column read as its text, parsed with orjson by the caller (much faster than per-value json)."""
    return cast(column, Text)


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _chunks(values: Iterable[int], size: int = CHUNK) -> Iterable[list[int]]:
    listed = sorted(set(values))
    for start in range(0, len(listed), size):
        yield listed[start : start + size]


class ExportItem(NamedTuple):
    """One current open item as an export needs it."""

    item_id: int
    external_id: str
    version: int
    status: str
    conversation: list[dict[str, Any]]
    tags: list[str]
    specialties: list[str]
    dimension: str | None
    extra: dict[str, Any]
    source_format: str | None


def open_items_page(
    *,
    session: Session,
    project_id: int,
    after: tuple[str, int] | None,
    limit: int,
    exclude_statuses: Sequence[str] = (),
) -> list[ExportItem]:
    """The next `limit` current open items of the project after (external id, version), ordered by external id
    then version; optionally leaving out some statuses (e.g. retired). Read-only."""
    query = sa_select(
        col(Item.id),
        col(Item.external_id),
        col(Item.version),
        col(Item.status),
        _json(Item.conversation),
        _json(Item.tags),
        _json(Item.specialties),
        col(Item.dimension),
        _json(Item.extra),
        col(Item.source_format),
    ).where(
        col(Item.project_id) == project_id,
        col(Item.is_current) == True,  # noqa: E712
        col(Item.kind) == "open",
    )
    if exclude_statuses:
        query = query.where(col(Item.status).not_in(list(exclude_statuses)))
    query = items_after(query, after, limit)
    return [
        ExportItem(int(i), e, int(v), s, _loads(c) or [], _loads(t) or [], _loads(sp) or [], d, _loads(x) or {}, f)
        for i, e, v, s, c, t, sp, d, x, f in _rows(session, query).all()
    ]


def items_after(query: Any, after: tuple[str, int] | None, limit: int) -> Any:
    """The query's next `limit` items after (external id, version), in that order: one page of a keyset walk."""
    if after is not None:
        external_id, version = after
        query = query.where(
            or_(
                col(Item.external_id) > external_id,
                and_(col(Item.external_id) == external_id, col(Item.version) > version),
            )
        )
    return query.order_by(col(Item.external_id), col(Item.version)).limit(limit)


class ExportCriterion(NamedTuple):
    criterion_id: int
    item_id: int
    position: int
    text: str
    points: int
    tags: list[str]
    axis: str | None
    accepted: bool


def item_criteria(*, session: Session, item_ids: Iterable[int]) -> dict[int, list[ExportCriterion]]:
    """The criteria of each item version, in position order. Read-only."""
    found: dict[int, list[ExportCriterion]] = {}
    for chunk in _chunks(item_ids):
        query = (
            sa_select(
                col(Criterion.id),
                col(Criterion.item_id),
                col(Criterion.position),
                col(Criterion.text),
                col(Criterion.points),
                _json(Criterion.tags),
                col(Criterion.axis),
                col(Criterion.accepted),
            )
            .where(col(Criterion.item_id).in_(chunk))
            .order_by(col(Criterion.item_id), col(Criterion.position), col(Criterion.id))
        )
        for c, i, p, text, points, tags, axis, accepted in _rows(session, query).all():
            found.setdefault(int(i), []).append(
                ExportCriterion(int(c), int(i), int(p), text, int(points), _loads(tags) or [], axis, bool(accepted))
            )
    return found


FETCH = 5000  # rows fetched from the database driver at a time by the streamed reads


def _driver_stream(session: Session, query: Any, name: str) -> Iterator[tuple[Any, ...]]:
    """The rows of a large ordered read, fetched by the database driver itself FETCH rows at a time, without
    SQLAlchemy's result rows (about half the time for millions of rows). The statement is rendered with its values
    inline: they are ids and constants of this module, never free text. On PostgreSQL the read is a named
    (server-side) cursor, so only FETCH rows are in memory at a time; SQLite's cursor streams by itself."""
    dialect = session.get_bind().dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    connection = session.connection().connection
    cursor = connection.cursor(name=name) if dialect.name == "postgresql" else connection.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(FETCH):
            yield from rows
    finally:
        cursor.close()


def _current_open_items(project_id: int) -> Any:
    return (
        col(Item.project_id) == project_id,
        col(Item.is_current) == True,  # noqa: E712
        col(Item.kind) == "open",
    )


def _export_order() -> tuple[Any, ...]:
    """The gold export's row order: item external id, item version, criterion position, criterion id, answer id."""
    return (col(Item.external_id), col(Item.version), col(Criterion.position), col(Criterion.id), col(Answer.id))


class ItemAnswer(NamedTuple):
    """One answer to a current open item, with the item it answers, as the gold export streams them."""

    item_id: int
    external_id: str
    version: int
    conversation: str | None  # JSON text
    answer_id: int
    answer_external_id: str | None
    text: str | None
    model: str


def stream_item_answers(*, session: Session, project_id: int) -> Iterator[ItemAnswer]:
    """Every answer to the project's current open items with its item, streamed by item external id, item version
    and answer id (the gold export's item order). Read-only."""
    query = (
        sa_select(
            col(Item.id),
            col(Item.external_id),
            col(Item.version),
            _json(Item.conversation),
            col(Answer.id),
            col(Answer.external_id),
            col(Answer.text),
            col(Model.name),
        )
        .join(Answer, col(Answer.item_id) == Item.id)
        .join(Model, col(Model.id) == Answer.model_id)
        .where(*_current_open_items(project_id))
        .order_by(col(Item.external_id), col(Item.version), col(Answer.id))
    )
    return (ItemAnswer(*row) for row in _driver_stream(session, query, "medreview_export_answers"))


LABEL_SEPARATOR = ","  # between the labels of one unit in stream_gold_units
RATER_SEPARATOR = ":"  # between a label's rater id and its value


def stream_gold_units(*, session: Session, project_id: int) -> Iterator[tuple[Any, ...]]:
    """Every unit of the project's current open items with a current gold label, streamed in the gold export's row
    order, as (criterion id, position, criterion text, points, criterion tags as JSON text, axis, answer id, gold
    value, method, rationale, disagreement category, counted labels). The counted labels are one text,
    "<rater id>:<value>" per label joined by "," in no set order, None when there is none (a value is met, not_met
    or unsure: neither separator occurs in it); they are read from ix_label_unit_rater without the label rows.
    Read-only."""
    labels = (
        sa_select(
            func.aggregate_strings(
                col(CriterionLabel.rater_id).concat(RATER_SEPARATOR).concat(col(CriterionLabel.value)),
                LABEL_SEPARATOR,
            )
        )
        .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
        .join(User, col(User.id) == CriterionLabel.rater_id)
        .where(
            col(CriterionLabel.answer_id) == Answer.id,
            col(CriterionLabel.criterion_id) == Criterion.id,
            *_counted(),
        )
        .scalar_subquery()
    )
    query = (
        sa_select(
            col(Criterion.id),
            col(Criterion.position),
            col(Criterion.text),
            col(Criterion.points),
            _json(Criterion.tags),
            col(Criterion.axis),
            col(Answer.id),
            col(GoldLabel.value),
            col(GoldLabel.method),
            col(GoldLabel.rationale),
            col(GoldLabel.disagreement_category),
            labels,
        )
        .select_from(Item)
        .join(Criterion, col(Criterion.item_id) == Item.id)
        .join(Answer, col(Answer.item_id) == Item.id)
        .join(
            GoldLabel,
            and_(
                col(GoldLabel.answer_id) == Answer.id,
                col(GoldLabel.criterion_id) == Criterion.id,
                col(GoldLabel.is_current) == True,  # noqa: E712
            ),
        )
        .where(*_current_open_items(project_id))
        .order_by(*_export_order())
    )
    return _driver_stream(session, query, "medreview_export_gold")


def stream_unit_comments(*, session: Session, project_id: int) -> Iterator[tuple[int, int, int, int, str]]:
    """Every counted label with a comment on answers to the project's current open items, streamed in the gold
    export's item order (item external id, item version), then by criterion, answer and rater, as (item id,
    criterion id, answer id, rater id, comment). Read from the partial index ix_label_commented: a project with few
    comments reads few rows. Read-only."""
    query = (
        sa_select(
            col(Item.id),
            col(CriterionLabel.criterion_id),
            col(CriterionLabel.answer_id),
            col(CriterionLabel.rater_id),
            col(CriterionLabel.comment),
        )
        .select_from(Item)
        .join(Answer, col(Answer.item_id) == Item.id)
        .join(
            CriterionLabel,
            and_(
                col(CriterionLabel.answer_id) == Answer.id,
                col(CriterionLabel.comment) != "",  # the condition of ix_label_commented
            ),
        )
        .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
        .join(User, col(User.id) == CriterionLabel.rater_id)
        .where(*_current_open_items(project_id), *_counted())
        .order_by(
            col(Item.external_id),
            col(Item.version),
            col(CriterionLabel.criterion_id),
            col(CriterionLabel.answer_id),
            col(CriterionLabel.rater_id),
            col(CriterionLabel.value),
            col(CriterionLabel.comment),
        )
    )
    return _driver_stream(session, query, "medreview_export_comments")


def _counted() -> Any:
    """Conditions of a counted label: a submitted grading by a physician or an imported rater."""
    return (
        col(Annotation.status) == "submitted",
        col(User.kind).in_(RATER_KINDS),
    )


def counted_labels(*conditions: Any) -> Any:
    """A query of counted labels (answer, criterion, rater, value, comment) meeting the conditions: submitted
    gradings by physicians and imported raters, as the gold export and the judge training data count them."""
    return (
        sa_select(
            col(CriterionLabel.answer_id),
            col(CriterionLabel.criterion_id),
            col(CriterionLabel.rater_id),
            col(CriterionLabel.value),
            col(CriterionLabel.comment),
        )
        .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
        .join(User, col(User.id) == CriterionLabel.rater_id)
        .where(*_counted(), *conditions)
    )


def labelled_units(*, session: Session, item_ids: Iterable[int]) -> list[tuple[int, int, int]]:
    """(answer id, criterion id, item id) of every unit of answers to these item versions that has at least one
    counted label, unordered. Read-only."""
    found: list[tuple[int, int, int]] = []
    for chunk in _chunks(item_ids):
        query = (
            sa_select(col(CriterionLabel.answer_id), col(CriterionLabel.criterion_id), col(Answer.item_id))
            .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
            .join(User, col(User.id) == CriterionLabel.rater_id)
            .join(Answer, col(Answer.id) == CriterionLabel.answer_id)
            .where(col(Answer.item_id).in_(chunk), *_counted())
            .distinct()
        )
        found.extend((a, c, i) for a, c, i in _rows(session, query).all())
    return found


class UnitLabel(NamedTuple):
    """One counted label: who gave which value to which unit, with the rater's comment."""

    answer_id: int
    criterion_id: int
    rater_id: int
    value: str
    comment: str


def unit_labels(*, session: Session, answer_ids: Iterable[int], criterion_ids: Iterable[int]) -> list[UnitLabel]:
    """The counted labels of these answers on these criteria, ordered by answer, criterion, rater and label id.
    Read-only."""
    criteria = sorted(set(criterion_ids))
    found: list[UnitLabel] = []
    for answer_chunk in _chunks(answer_ids):
        for criterion_chunk in _chunks(criteria):
            query = counted_labels(
                col(CriterionLabel.answer_id).in_(answer_chunk), col(CriterionLabel.criterion_id).in_(criterion_chunk)
            )
            found.extend(UnitLabel(a, c, r, v, t or "") for a, c, r, v, t in _rows(session, query).all())
    found.sort()  # by answer, criterion, rater (then value and comment: one label per rater and unit)
    return found


class ExportAnswer(NamedTuple):
    answer_id: int
    item_id: int
    external_id: str | None
    text: str
    model: str


def answers_by_id(*, session: Session, answer_ids: Iterable[int]) -> dict[int, ExportAnswer]:
    """Map answer id → its text, its id in its source and its model's name. Read-only."""
    found: dict[int, ExportAnswer] = {}
    for chunk in _chunks(answer_ids):
        query = (
            sa_select(col(Answer.id), col(Answer.item_id), col(Answer.external_id), col(Answer.text), col(Model.name))
            .join(Model, col(Model.id) == Answer.model_id)
            .where(col(Answer.id).in_(chunk))
        )
        found.update({a: ExportAnswer(a, i, e, t or "", m) for a, i, e, t, m in _rows(session, query).all()})
    return found


class ProjectRater(NamedTuple):
    user_id: int
    username: str
    kind: str


def project_raters(*, session: Session, project_id: int) -> list[ProjectRater]:
    """The physicians and imported raters with submitted gradings of answers to the project's current open items,
    by user id. Read-only."""
    raters = (
        sa_select(col(Annotation.rater_id))
        .join(Answer, col(Answer.id) == Annotation.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .where(
            col(Item.project_id) == project_id,
            col(Item.is_current) == True,  # noqa: E712
            col(Item.kind) == "open",
            col(Annotation.status) == "submitted",
        )
        .distinct()
    )
    query = (
        sa_select(col(User.id), col(User.username), col(User.kind))
        .where(col(User.id).in_(raters), col(User.kind).in_(RATER_KINDS))
        .order_by(col(User.id))
    )
    return [ProjectRater(int(i), u, k) for i, u, k in _rows(session, query).all()]

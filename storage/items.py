"""Repository functions for items, rubric criteria, models, answers and import batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import String, and_, cast, func, insert, or_, true, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.models import (
    Annotation,
    Answer,
    AuditEvent,
    Criterion,
    CriterionLabel,
    DuplicateFlag,
    GoldLabel,
    ImportBatch,
    Item,
    Model,
)

CHUNK = 500  # rows per IN (...) list, well under every database's parameter limit


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class CurrentItem:
    item_id: int
    content_hash: str
    version: int
    kind: str


def current_items_by_external_id(*, session: Session, project_id: int) -> dict[str, CurrentItem]:
    """Map external id → the current version of each item in a project. Read-only."""
    # five columns: SQLAlchemy's select (sqlmodel's typed select stops at four)
    query = sa_select(
        col(Item.external_id), col(Item.id), col(Item.content_hash), col(Item.version), col(Item.kind)
    ).where(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
    return {
        external_id: CurrentItem(item_id, content_hash, version, kind)
        for external_id, item_id, content_hash, version, kind in session.execute(query).all()
    }


# The bulk inserts below are Core inserts into the tables, not ORM bulk inserts (insert(Item)): the
# ORM path costs tens of microseconds of bookkeeping per row, which is most of the time of a big
# import. Every row of one call must have the same keys (a row with every column it sets).


def add_items(*, session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert item rows in one statement; return their ids in the order given."""
    if not rows:
        return []
    table = Item.__table__  # type: ignore[attr-defined]
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in session.execute(statement, list(rows)).all()]


def add_criteria(*, session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rubric criterion rows (item_id, position, text, points, tags, axis)."""
    if rows:
        session.execute(insert(Criterion.__table__), list(rows))  # type: ignore[attr-defined]
    return len(rows)


def mark_not_current(*, session: Session, item_ids: Sequence[int]) -> None:
    """Mark item versions as no longer current (a newer version replaces them)."""
    for chunk in _chunks(list(item_ids)):
        session.execute(update(Item).where(col(Item.id).in_(chunk)).values(is_current=False))


def model_ids(*, session: Session, names: Iterable[str], create: bool = True) -> dict[str, int]:
    """Map model names to ids, adding the models that do not exist yet when create is set."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    for chunk in _chunks(wanted):
        query = select(col(Model.name), col(Model.id)).where(col(Model.name).in_(chunk))
        found.update({name: model_id for name, model_id in session.exec(query).all() if model_id is not None})
    missing = [name for name in wanted if name not in found]
    if missing and create:
        for name in missing:
            model = Model(name=name)
            session.add(model)
            session.flush()
            assert model.id is not None
            found[name] = model.id
    return found


def existing_answer_keys(*, session: Session, item_ids: Sequence[int]) -> set[tuple[int, int, str]]:
    """Return (item_id, model_id, content_hash) of the answers to these items. Read-only."""
    keys: set[tuple[int, int, str]] = set()
    for chunk in _chunks(list(item_ids)):
        query = select(Answer.item_id, Answer.model_id, Answer.content_hash).where(col(Answer.item_id).in_(chunk))
        keys.update(session.exec(query).all())
    return keys


def add_answers(*, session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert answer rows (item_id, model_id, text, source, slot, content_hash)."""
    if rows:
        session.execute(insert(Answer.__table__), list(rows))  # type: ignore[attr-defined]
    return len(rows)


def add_import_batch(
    *,
    session: Session,
    project_id: int,
    filename: str,
    format: str,
    sha256: str,
    created_by: int | None,
) -> int:
    """Record an import and return its id."""
    batch = ImportBatch(project_id=project_id, filename=filename, format=format, sha256=sha256, created_by=created_by)
    session.add(batch)
    session.flush()
    assert batch.id is not None
    return batch.id


def max_item_id(*, session: Session, project_id: int) -> int:
    """The highest item id in a project (0 when it has none). Read-only."""
    highest = session.exec(select(func.max(Item.id)).where(Item.project_id == project_id)).one()
    return int(highest or 0)


def latest_import_batch(*, session: Session, project_id: int, sha256: str) -> ImportBatch | None:
    """The newest import of a file with this digest into the project, or None. Read-only."""
    query = (
        select(ImportBatch)
        .where(ImportBatch.project_id == project_id, ImportBatch.sha256 == sha256)
        .order_by(col(ImportBatch.id).desc())
        .limit(1)
    )
    return session.exec(query).first()


def set_import_counts(*, session: Session, batch_id: int, counts: dict[str, Any]) -> None:
    """Store the final counts of an import."""
    batch = session.get(ImportBatch, batch_id)
    if batch is not None:
        batch.counts = dict(counts)
        session.add(batch)


# --- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFilter:
    """Which items of a project a list shows: every filter set must hold (tags: all of them; flagged: a
    flagged criterion or an open duplicate flag)."""

    project_id: int
    kind: str | None = None
    status: str | None = None
    specialty: str | None = None
    dimension: str | None = None
    text: str | None = None
    current_only: bool = True
    tags: tuple[str, ...] = ()
    flagged: bool = False


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_member(value: str) -> str:
    """A LIKE pattern (escape \\) matching the stored JSON text of a list holding this string: JSON columns
    are written by orjson (storage.db), so the string appears in the text exactly as orjson writes it."""
    return "%" + _like_escape(orjson.dumps(value).decode("utf-8")) + "%"


def _contains(column: Any, needle: str, dialect: str) -> Any:
    # SQLite's LIKE already ignores ASCII case; ILIKE would become lower(column) LIKE lower(...), which
    # lowercases every text of the project on each search.
    if dialect == "sqlite":
        return column.like(needle, escape="\\")
    return column.ilike(needle, escape="\\")


def _flagged_items(project_id: int) -> Any:
    flagged_criteria = select(Criterion.item_id).where(Criterion.flagged == True)  # noqa: E712
    open_duplicates = select(DuplicateFlag.item_id).where(
        DuplicateFlag.project_id == project_id, DuplicateFlag.status == "open"
    )
    return or_(col(Item.id).in_(flagged_criteria), col(Item.id).in_(open_duplicates))


def _filtered(query: Any, spec: ItemFilter, dialect: str = "sqlite") -> Any:
    query = query.where(Item.project_id == spec.project_id)
    if spec.current_only:
        query = query.where(Item.is_current == True)  # noqa: E712
    if spec.kind:
        query = query.where(Item.kind == spec.kind)
    if spec.status:
        query = query.where(Item.status == spec.status)
    if spec.dimension:
        query = query.where(Item.dimension == spec.dimension)
    if spec.specialty:
        query = query.where(cast(Item.specialties, String).like(_json_member(spec.specialty), escape="\\"))
    for tag in spec.tags:
        query = query.where(cast(Item.tags, String).like(_json_member(tag), escape="\\"))
    if spec.flagged:
        query = query.where(_flagged_items(spec.project_id))
    if spec.text and spec.text.strip():
        needle = "%" + _like_escape(spec.text.strip()) + "%"
        query = query.where(
            or_(
                _contains(col(Item.external_id), needle, dialect),
                _contains(col(Item.question), needle, dialect),
                _contains(cast(Item.conversation, String), needle, dialect),
            )
        )
    return query


def _dialect(session: Session) -> str:
    return str(session.get_bind().dialect.name)


def reads_rows(spec: ItemFilter) -> bool:
    """True when the filter must read the items' rows (text, specialty, tags, flagged): no index answers it.
    Pure."""
    return bool((spec.text or "").strip() or spec.specialty or spec.tags or spec.flagged)


def _one_pass(spec: ItemFilter) -> bool:
    """True when the matching ids are best collected once (the filter reads the rows, or it is answered by the
    (project_id, is_current, kind, status, dimension) index, not in id order); False when the count and the
    page both come straight from the (project_id, is_current, status) and (project_id, is_current, id)
    indexes."""
    return bool(spec.kind or spec.dimension or reads_rows(spec))


def count_items(*, session: Session, spec: ItemFilter) -> int:
    """How many items match the filter. Read-only."""
    query = _filtered(select(func.count()).select_from(Item), spec, _dialect(session))
    return int(session.exec(query).one())


def page_ids(*, session: Session, spec: ItemFilter, limit: int, offset: int) -> tuple[list[int], int]:
    """The ids of one page of the items matching the filter, in id order, and how many match. Read-only.

    With no filter or a status only, a count and a page of ids, each read from an index in id order. Any
    other filter takes one statement that collects the matching ids once (a common table expression used
    twice is materialized by SQLite and PostgreSQL) and returns the total with the page: rows that must be
    read (text, tags, flagged...) are read once, not once to count and again to page.
    """
    dialect = _dialect(session)
    if not _one_pass(spec):
        total = count_items(session=session, spec=spec)
        if offset >= total:
            return [], total
        query = _filtered(select(Item.id), spec, dialect).order_by(col(Item.id)).limit(limit).offset(offset)
        return [int(item_id) for item_id in session.exec(query).all() if item_id is not None], total
    matched = _filtered(select(Item.id), spec, dialect).cte("matched")
    counted = sa_select(func.count().label("total")).select_from(matched).subquery("counted")
    paged = sa_select(matched.c.id).order_by(matched.c.id).limit(limit).offset(offset).subquery("paged")
    query = sa_select(counted.c.total, paged.c.id).select_from(counted.outerjoin(paged, true())).order_by(paged.c.id)
    found = session.execute(query).all()
    return [int(item_id) for _, item_id in found if item_id is not None], int(found[0][0]) if found else 0


def list_items(*, session: Session, spec: ItemFilter, limit: int = 50, offset: int = 0) -> tuple[list[Item], int]:
    """Return one page of items matching the filter, and the total count. Read-only."""
    ids, total = page_ids(session=session, spec=spec, limit=limit, offset=offset)
    if not ids:
        return [], total
    return list(session.exec(select(Item).where(col(Item.id).in_(ids)).order_by(col(Item.id))).all()), total


@dataclass(frozen=True)
class ItemListRow:
    """What a list of items shows about one item version."""

    item_id: int
    external_id: str
    kind: str
    status: str
    version: int
    specialties: list[str]
    dimension: str | None
    tags: list[str]
    question: str | None
    conversation: list[dict[str, Any]]
    flagged_criteria: int
    open_duplicates: int


def item_list_rows(*, session: Session, item_ids: Sequence[int]) -> list[ItemListRow]:
    """These item versions as a list shows them, in id order, with how many of each one's criteria are
    flagged and how many open duplicate flags it has. Read-only."""
    if not item_ids:
        return []
    flagged = (
        select(func.count())
        .select_from(Criterion)
        .where(Criterion.item_id == Item.id, Criterion.flagged == True)  # noqa: E712
        .scalar_subquery()
    )
    duplicates = (
        select(func.count())
        .select_from(DuplicateFlag)
        .where(DuplicateFlag.item_id == Item.id, DuplicateFlag.status == "open")
        .scalar_subquery()
    )
    query = (
        sa_select(
            col(Item.id),
            col(Item.external_id),
            col(Item.kind),
            col(Item.status),
            col(Item.version),
            col(Item.specialties),
            col(Item.dimension),
            col(Item.tags),
            col(Item.question),
            col(Item.conversation),
            flagged,
            duplicates,
        )
        .where(col(Item.id).in_(list(item_ids)))
        .order_by(col(Item.id))
    )
    return [
        ItemListRow(
            int(item_id),
            external_id,
            kind,
            status,
            int(version),
            list(specialties or []),
            dimension,
            list(tags or []),
            question,
            list(conversation or []),
            int(flagged_count or 0),
            int(duplicate_count or 0),
        )
        for (
            item_id,
            external_id,
            kind,
            status,
            version,
            specialties,
            dimension,
            tags,
            question,
            conversation,
            flagged_count,
            duplicate_count,
        ) in session.execute(query).all()
    ]


def matching_item_ids(*, session: Session, spec: ItemFilter) -> list[int]:
    """The ids of every item matching the filter, in id order. Read-only."""
    query = _filtered(select(Item.id), spec, _dialect(session)).order_by(col(Item.id))
    return [int(item_id) for item_id in session.exec(query).all() if item_id is not None]


def listing_version(*, session: Session, project_id: int) -> tuple[int, int]:
    """The newest audit event id and the project's newest item id. A change of an item's status, tags, criterion
    flags or content, and a curator's decision on a duplicate flag, is audited or makes a new item version, so
    either number moves; duplicate flags a check adds on its own are not audited (a kept list of ids must
    also expire). Read-only."""
    newest_event = session.exec(select(func.max(AuditEvent.id))).one()
    newest_item = session.exec(select(func.max(Item.id)).where(Item.project_id == project_id)).one()
    return int(newest_event or 0), int(newest_item or 0)


def project_tags(*, session: Session, project_id: int) -> list[str]:
    """Every tag on the project's current items, sorted. Read-only."""
    query = (
        select(cast(Item.tags, String))
        .where(Item.project_id == project_id, Item.is_current == True)  # noqa: E712
        .distinct()
    )
    found: set[str] = set()
    for text in session.exec(query).all():
        if text and text != "[]":
            found.update(str(tag) for tag in orjson.loads(text))
    return sorted(found)


def get_item(*, session: Session, item_id: int) -> Item | None:
    """Return one item version, or None. Read-only."""
    return session.get(Item, item_id)


def list_item_versions(*, session: Session, project_id: int, external_id: str) -> list[Item]:
    """Every version of an item, oldest first. Read-only."""
    query = (
        select(Item).where(Item.project_id == project_id, Item.external_id == external_id).order_by(col(Item.version))
    )
    return list(session.exec(query).all())


def list_criteria(*, session: Session, item_id: int) -> list[Criterion]:
    """The rubric of one item version, in order. Read-only."""
    query = select(Criterion).where(Criterion.item_id == item_id).order_by(col(Criterion.position))
    return list(session.exec(query).all())


def get_answer(*, session: Session, answer_id: int) -> Answer | None:
    """One answer (without its model's name). Read-only."""
    return session.get(Answer, answer_id)


def list_answers(*, session: Session, item_id: int) -> list[tuple[Answer, str]]:
    """Answers to one item version with their model names, oldest first. Read-only."""
    query = (
        select(Answer, Model.name)
        .join(Model, col(Model.id) == Answer.model_id)
        .where(Answer.item_id == item_id)
        .order_by(col(Answer.id))
    )
    return [(answer, name) for answer, name in session.exec(query).all()]


def project_counts(*, session: Session, project_id: int) -> dict[str, Any]:
    """Counts for a project's current items: items (by kind and status), criteria, answers,
    submitted labels and current gold labels. Read-only."""
    current = and_(col(Item.project_id) == project_id, col(Item.is_current) == True)  # noqa: E712
    by_status = dict(session.exec(select(Item.status, func.count()).where(current).group_by(col(Item.status))).all())
    by_kind = dict(session.exec(select(Item.kind, func.count()).where(current).group_by(col(Item.kind))).all())
    criteria = session.exec(
        select(func.count()).select_from(Criterion).join(Item, col(Item.id) == Criterion.item_id).where(current)
    ).one()
    answers = session.exec(
        select(func.count()).select_from(Answer).join(Item, col(Item.id) == Answer.item_id).where(current)
    ).one()
    labels = session.exec(
        select(func.count())
        .select_from(CriterionLabel)
        .join(Annotation, col(Annotation.id) == CriterionLabel.annotation_id)
        .join(Answer, col(Answer.id) == CriterionLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .where(Item.project_id == project_id, Annotation.status == "submitted")
    ).one()
    gold = session.exec(
        select(func.count())
        .select_from(GoldLabel)
        .join(Answer, col(Answer.id) == GoldLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .where(Item.project_id == project_id, GoldLabel.is_current == True)  # noqa: E712
    ).one()
    return {
        "items": int(sum(by_status.values())),
        "items_by_status": {k: int(v) for k, v in sorted(by_status.items())},
        "items_by_kind": {k: int(v) for k, v in sorted(by_kind.items())},
        "criteria": int(criteria),
        "answers": int(answers),
        "labels": int(labels),
        "gold_labels": int(gold),
    }

"""Repository functions for near-duplicate checks: items' MinHash signatures and duplicate flags."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import and_, delete, func, insert, not_, or_, update
from sqlalchemy import select as columns_of
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage.agreement import driver_rows
from storage.models import DuplicateFlag, Item, ItemSignature, Project

CHUNK = 500  # values per IN (...) list


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _active() -> Any:
    """Item versions that take part in near-duplicate checks: current and not retired."""
    return and_(col(Item.is_current) == True, col(Item.status) != "retired")  # noqa: E712


# --- items and their text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemForCheck:
    """What a near-duplicate check needs of one item version."""

    item_id: int
    project_id: int
    external_id: str
    kind: str
    status: str
    is_current: bool
    conversation: list[dict[str, Any]]
    question: str | None
    options: dict[str, str]


def _item_query() -> Any:
    return columns_of(
        col(Item.id),
        col(Item.project_id),
        col(Item.external_id),
        col(Item.kind),
        col(Item.status),
        col(Item.is_current),
        col(Item.conversation),
        col(Item.question),
        col(Item.options),
    )


def _items(session: Session, query: Any) -> list[ItemForCheck]:
    # the database driver's rows and orjson: thousands of conversations decode several times faster
    return [
        ItemForCheck(
            int(item_id),
            int(project_id),
            external_id,
            kind,
            status,
            bool(current),
            _json(conversation) or [],
            question,
            _json(options) or {},
        )
        for item_id, project_id, external_id, kind, status, current, conversation, question, options in driver_rows(
            session, query
        )
    ]


def _json(value: Any) -> Any:
    """A JSON column as the driver returns it: text (SQLite) or already decoded (PostgreSQL)."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def items_for_check(*, session: Session, item_ids: Sequence[int]) -> list[ItemForCheck]:
    """These item versions with their text, by id. Read-only."""
    found: list[ItemForCheck] = []
    for chunk in _chunks(sorted(set(item_ids))):
        found.extend(_items(session, _item_query().where(col(Item.id).in_(chunk)).order_by(col(Item.id))))
    return found


def unsigned_items(*, session: Session, project_id: int) -> list[ItemForCheck]:
    """The project's current, not retired items that have no signature yet. Read-only."""
    signed = select(ItemSignature.item_id).where(ItemSignature.project_id == project_id)
    query = (
        _item_query()
        .where(col(Item.project_id) == project_id, _active(), col(Item.id).not_in(signed))
        .order_by(col(Item.id))
    )
    return _items(session, query)


def current_item_id(*, session: Session, project_id: int, external_id: str) -> int | None:
    """The id of an item's current version in a project, or None. Read-only."""
    # by (project, external id) only, so the (project, external id, version) index answers it
    query = select(Item.id, Item.is_current).where(Item.project_id == project_id, Item.external_id == external_id)
    return next((int(item_id) for item_id, current in session.exec(query).all() if current and item_id), None)


def active_item_ids(*, session: Session, project_id: int) -> list[int]:
    """Ids of the project's current, not retired items. Read-only."""
    query = select(Item.id).where(col(Item.project_id) == project_id, _active()).order_by(col(Item.id))
    return [int(item_id) for item_id in session.exec(query).all() if item_id is not None]


# --- signatures ----------------------------------------------------------------------------------------


def replace_signatures(*, session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store signatures (item_id, project_id, signature, shingles), replacing those of the same items."""
    item_ids = [row["item_id"] for row in rows]
    for chunk in _chunks(item_ids):
        session.execute(delete(ItemSignature).where(col(ItemSignature.item_id).in_(chunk)))
    if rows:
        session.execute(insert(ItemSignature.__table__), list(rows))  # type: ignore[attr-defined]
    return len(rows)


@dataclass(frozen=True)
class SignatureRows:
    """Signatures of many items: ids and projects as arrays, the signatures one after another."""

    item_ids: npt.NDArray[np.int64]
    project_ids: npt.NDArray[np.int64]
    signatures: bytes

    def __len__(self) -> int:
        return int(self.item_ids.size)


def signature_rows(*, session: Session, project_ids: Sequence[int]) -> SignatureRows:
    """The signatures of the current, not retired items of these projects that have text to compare.
    Read-only.

    Two plain reads fetched by the database driver itself (the projects' signatures, and the ids of their
    earlier versions and retired items, from an index), matched with numpy: 50,000 signatures of 512 bytes
    in well under 100 ms, where a join would read an item row per signature.
    """
    wanted = [int(p) for p in project_ids]
    if not wanted:
        return SignatureRows(np.empty(0, np.int64), np.empty(0, np.int64), b"")
    signed = columns_of(col(ItemSignature.item_id), col(ItemSignature.project_id), col(ItemSignature.signature)).where(
        col(ItemSignature.project_id).in_(wanted), col(ItemSignature.shingles) > 0
    )
    rows = driver_rows(session, signed)
    if not rows:
        return SignatureRows(np.empty(0, np.int64), np.empty(0, np.int64), b"")
    inactive = columns_of(col(Item.id)).where(col(Item.project_id).in_(wanted), not_(_active()))
    left_out = np.array([row[0] for row in driver_rows(session, inactive)], dtype=np.int64)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    keep = ~np.isin(ids, left_out)
    if not keep.all():
        rows = [row for row, current in zip(rows, keep.tolist(), strict=True) if current]
        ids = ids[keep]
    owners = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
    return SignatureRows(ids, owners, b"".join(row[2] for row in rows))


def count_without_text(*, session: Session, project_id: int) -> int:
    """How many of the project's current, not retired items have a signature without shingles. Read-only."""
    query = (
        select(func.count())
        .select_from(ItemSignature)
        .join(Item, col(Item.id) == ItemSignature.item_id)
        .where(col(ItemSignature.project_id) == project_id, col(ItemSignature.shingles) == 0, _active())
    )
    return int(session.exec(query).one())


# --- projects ------------------------------------------------------------------------------------------


def project_names(*, session: Session, reference: bool | None = None) -> dict[int, str]:
    """Project ids → names, all or only reference (or only other) projects. Read-only."""
    query = select(Project.id, Project.name)
    if reference is not None:
        query = query.where(Project.is_reference == reference)
    return {int(project_id): name for project_id, name in session.exec(query).all() if project_id is not None}


# --- items shown beside a match ------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemBrief:
    item_id: int
    external_id: str
    project_id: int
    project: str
    kind: str
    question: str | None
    conversation: list[dict[str, Any]]


def item_briefs(*, session: Session, item_ids: Iterable[int]) -> dict[int, ItemBrief]:
    """Id, external id, project and preview text of these items. Read-only."""
    found: dict[int, ItemBrief] = {}
    for chunk in _chunks(sorted(set(item_ids))):
        query = (
            columns_of(
                col(Item.id),
                col(Item.external_id),
                col(Item.project_id),
                col(Project.name),
                col(Item.kind),
                col(Item.question),
                col(Item.conversation),
            )
            .join(Project, col(Project.id) == Item.project_id)
            .where(col(Item.id).in_(chunk))
        )
        for item_id, external_id, project_id, project, kind, question, conversation in session.execute(query).all():
            found[int(item_id)] = ItemBrief(
                int(item_id), external_id, int(project_id), project, kind, question, list(conversation or [])
            )
    return found


# --- flags ---------------------------------------------------------------------------------------------


def existing_flags(*, session: Session, item_ids: Sequence[int]) -> dict[tuple[int, int], tuple[int, str]]:
    """(item_id, match_item_id) → (flag id, status) of every flag that involves these items, either side.
    Read-only."""
    found: dict[tuple[int, int], tuple[int, str]] = {}
    for chunk in _chunks(sorted(set(item_ids))):
        query = columns_of(
            col(DuplicateFlag.item_id),
            col(DuplicateFlag.match_item_id),
            col(DuplicateFlag.id),
            col(DuplicateFlag.status),
        ).where(or_(col(DuplicateFlag.item_id).in_(chunk), col(DuplicateFlag.match_item_id).in_(chunk)))
        found.update(
            {(int(a), int(b)): (int(flag_id), status) for a, b, flag_id, status in session.execute(query).all()}
        )
    return found


@dataclass(frozen=True)
class StoredFlag:
    flag_id: int
    status: str
    added: bool  # False: the pair had a flag already (either way round)


def add_flags(*, session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, int], StoredFlag]:
    """Insert open duplicate flags (project_id, item_id, match_item_id, similarity, scope, created_at),
    skipping a pair that has a flag either way round; return (item_id, match_item_id) → the stored flag
    of every pair asked for, new or not."""
    existing = existing_flags(session=session, item_ids=[row["item_id"] for row in rows])
    result: dict[tuple[int, int], StoredFlag] = {}
    fresh = []
    for row in rows:
        pair = (row["item_id"], row["match_item_id"])
        known = existing.get(pair) or existing.get((pair[1], pair[0]))
        if known is not None:
            result[pair] = StoredFlag(known[0], known[1], added=False)
        elif pair not in result:
            result[pair] = StoredFlag(0, "open", added=True)
            fresh.append({"status": "open", "note": "", "decided_by": None, "decided_at": None, **row})
    if fresh:
        before = session.exec(select(func.max(DuplicateFlag.id))).one() or 0
        session.execute(insert(DuplicateFlag.__table__), fresh)  # type: ignore[attr-defined]
        # the new rows' ids: above every id before the insert, found by their pairs
        query = select(DuplicateFlag.id, DuplicateFlag.item_id, DuplicateFlag.match_item_id).where(
            col(DuplicateFlag.id) > before
        )
        for flag_id, item_id, match_item_id in session.exec(query).all():
            if (item_id, match_item_id) in result and flag_id is not None:
                result[(item_id, match_item_id)] = StoredFlag(int(flag_id), "open", added=True)
    return result


def get_flag(*, session: Session, flag_id: int) -> DuplicateFlag | None:
    """One duplicate flag, or None. Read-only."""
    return session.get(DuplicateFlag, flag_id)


def set_flag_status(
    *, session: Session, flag_id: int, status: str, note: str, decided_by: int | None, decided_at: datetime | None
) -> None:
    """Change a flag's status and note, recording who decided and when."""
    session.execute(
        update(DuplicateFlag)
        .where(col(DuplicateFlag.id) == flag_id)
        .values(status=status, note=note, decided_by=decided_by, decided_at=decided_at)
    )


def resolve_stale_flags(*, session: Session, note: str) -> int:
    """Mark open flags whose item or match is no longer current or was retired as resolved."""
    stale = select(Item.id).where(or_(col(Item.is_current) == False, col(Item.status) == "retired"))  # noqa: E712
    result: Any = session.execute(
        update(DuplicateFlag)
        .where(
            col(DuplicateFlag.status) == "open",
            or_(col(DuplicateFlag.item_id).in_(stale), col(DuplicateFlag.match_item_id).in_(stale)),
        )
        .values(status="resolved", note=note)
    )
    return int(result.rowcount or 0)


def resolve_reference_flags(*, session: Session, reference_project_id: int, note: str) -> int:
    """Mark open reference flags whose match is an item of this project as resolved."""
    matches = select(Item.id).where(Item.project_id == reference_project_id)
    result: Any = session.execute(
        update(DuplicateFlag)
        .where(
            col(DuplicateFlag.status) == "open",
            col(DuplicateFlag.scope) == "reference",
            col(DuplicateFlag.match_item_id).in_(matches),
        )
        .values(status="resolved", note=note)
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class FlagListing:
    flag_id: int
    project_id: int
    item_id: int
    item_external_id: str
    item_project: str
    match_item_id: int
    match_external_id: str
    match_project: str
    similarity: float
    scope: str
    status: str
    note: str
    decided_by: int | None


def _flag_query() -> Any:
    flagged, matched = aliased(Item), aliased(Item)
    flagged_project, matched_project = aliased(Project), aliased(Project)
    query = (
        columns_of(
            col(DuplicateFlag.id),
            col(DuplicateFlag.project_id),
            col(DuplicateFlag.item_id),
            col(flagged.external_id),
            col(flagged_project.name),
            col(DuplicateFlag.match_item_id),
            col(matched.external_id),
            col(matched_project.name),
            col(DuplicateFlag.similarity),
            col(DuplicateFlag.scope),
            col(DuplicateFlag.status),
            col(DuplicateFlag.note),
            col(DuplicateFlag.decided_by),
        )
        .join(flagged, col(flagged.id) == DuplicateFlag.item_id)
        .join(flagged_project, col(flagged_project.id) == col(flagged.project_id))
        .join(matched, col(matched.id) == DuplicateFlag.match_item_id)
        .join(matched_project, col(matched_project.id) == col(matched.project_id))
    )
    both_active = and_(
        col(flagged.is_current) == True,  # noqa: E712
        col(flagged.status) != "retired",
        col(matched.is_current) == True,  # noqa: E712
        col(matched.status) != "retired",
    )
    return query, both_active, matched


def _listings(session: Session, query: Any) -> list[FlagListing]:
    return [
        FlagListing(
            int(flag_id),
            int(project_id),
            int(item_id),
            item_external_id,
            item_project,
            int(match_item_id),
            match_external_id,
            match_project,
            float(similarity),
            scope,
            status,
            note or "",
            decided_by,
        )
        for (
            flag_id,
            project_id,
            item_id,
            item_external_id,
            item_project,
            match_item_id,
            match_external_id,
            match_project,
            similarity,
            scope,
            status,
            note,
            decided_by,
        ) in session.execute(query).all()
    ]


def list_project_flags(
    *, session: Session, project_id: int, status: str | None, copies_elsewhere: bool = False
) -> list[FlagListing]:
    """The flags on a project's items (and, with copies_elsewhere, the reference flags on other projects' items
    that copy this project's), most similar first; open ones only while both items are current and not
    retired. Read-only."""
    query, both_active, matched = _flag_query()
    if copies_elsewhere:
        query = query.where(
            or_(
                col(DuplicateFlag.project_id) == project_id,
                and_(col(DuplicateFlag.scope) == "reference", col(matched.project_id) == project_id),
            )
        )
    else:
        query = query.where(col(DuplicateFlag.project_id) == project_id)
    if status is not None:
        query = query.where(col(DuplicateFlag.status) == status)
    if status == "open":
        query = query.where(both_active)
    query = query.order_by(col(DuplicateFlag.similarity).desc(), col(DuplicateFlag.id))
    return _listings(session, query)


def list_item_flags(*, session: Session, item_id: int, include_closed: bool) -> list[FlagListing]:
    """The flags that involve one item version, on either side, most similar first. Read-only."""
    query, both_active, _ = _flag_query()
    query = query.where(or_(col(DuplicateFlag.item_id) == item_id, col(DuplicateFlag.match_item_id) == item_id))
    if not include_closed:
        query = query.where(col(DuplicateFlag.status) == "open", both_active)
    query = query.order_by(col(DuplicateFlag.similarity).desc(), col(DuplicateFlag.id))
    return _listings(session, query)

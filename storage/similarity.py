"""Repository functions for near-duplicate checks: items' MinHash signatures and duplicate flags."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import LargeBinary, and_, case, cast, delete, func, insert, or_, text, union_all, update
from sqlalchemy import select as columns_of
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage.agreement import driver_rows
from storage.audit import add_audit_event
from storage.models import AuditEvent, DuplicateFlag, Item, ItemSignature, Project

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
#
# A near-duplicate check compares one text with every stored signature of a few projects: 50,000 rows of 512
# bytes. Reading them takes far longer than comparing them, so each project's signatures are kept in memory
# between checks (in this process, CACHE_BYTES at most, the least recently used project forgotten first) and
# checked against the database on every read, before they are used:
#   - the project's number of signature rows and its highest item id (from the index on (project_id, item_id));
#     rows are only ever added (new item versions have higher ids) or replaced, so a row added, or removed
#     outside replace_signatures, changes one or the other, and rows added above the highest id are read alone;
#   - the number and the newest id of the "replace" audit events of the project's signatures: replace_signatures
#     records one whenever it changes a stored signature (an item edited in place), naming the items, which are
#     read again.
# Whether an item version is current and not retired is read afresh every time (see inactive_item_ids), so an
# edit, a new version or a retirement is seen at once, whatever the cache holds.

SIGNATURE_VALUES = 128  # uint32 values per signature (review.similarity.NUM_PERM)
SIGNATURE_BYTES = SIGNATURE_VALUES * 4
SIGNATURES_ENTITY = "item_signatures"  # audit entity: a project's signatures (entity_id: the project)
SIGNATURES_REPLACED = "replace"
CACHE_BYTES = 256 * 2**20  # signatures kept in memory, at most (about 500,000 items)
_TRANSPOSE_ROWS = 2048
_WRITTEN_IN = "medreview_signatures_written_in"  # session.info: the transaction that wrote signatures

I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


def replace_signatures(*, session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store signatures (item_id, project_id, signature, shingles), replacing those of the same items; a changed
    signature is recorded as a "replace" audit event of its project's signatures (entity item_signatures)."""
    by_item = {int(row["item_id"]): row for row in rows}
    changed: dict[int, list[int]] = {}  # project id → items whose stored signature changes
    for chunk in _chunks(sorted(by_item)):
        stored = columns_of(
            col(ItemSignature.item_id),
            col(ItemSignature.project_id),
            col(ItemSignature.signature),
            col(ItemSignature.shingles),
        ).where(col(ItemSignature.item_id).in_(chunk))
        for item_id, project_id, signature, shingles in session.execute(stored).all():
            row = by_item[int(item_id)]
            new = (int(row["project_id"]), bytes(row["signature"]), int(row["shingles"]))
            if new != (int(project_id), bytes(signature), int(shingles)):
                for owner in {int(project_id), new[0]}:
                    changed.setdefault(owner, []).append(int(item_id))
        session.execute(delete(ItemSignature).where(col(ItemSignature.item_id).in_(chunk)))
    if rows:
        session.execute(insert(ItemSignature.__table__), list(rows))  # type: ignore[attr-defined]
        session.info[_WRITTEN_IN] = session.get_transaction()  # until it ends, nothing read is kept
    for project_id, item_ids in sorted(changed.items()):
        add_audit_event(
            session=session,
            actor_id=None,
            action=SIGNATURES_REPLACED,
            entity=SIGNATURES_ENTITY,
            entity_id=project_id,
            project_id=project_id,
            detail={"item_ids": sorted(item_ids)},
        )
    return len(rows)


@dataclass(frozen=True)
class ProjectSignatures:
    """One project's stored signatures of item versions with text to compare (current or not): item ids in
    ascending order, and one row of 128 uint32 values each (read-only; stored column by column, see
    _by_columns)."""

    project_id: int
    item_ids: I64
    matrix: U32

    def __len__(self) -> int:
        return int(self.item_ids.size)


@dataclass(frozen=True)
class _Kept:
    """A project's signatures as read from the database, and what they were read at."""

    pool: weakref.ref[Any]  # the connection pool (so the database) they were read from
    replaced: tuple[int, int]  # the project's "replace" events (how many, newest id), read before the rows
    all_ids: I64  # every signature row's item id, with text or not, ascending
    signatures: ProjectSignatures

    @property
    def nbytes(self) -> int:
        return int(self.all_ids.nbytes + self.signatures.item_ids.nbytes + self.signatures.matrix.nbytes)


class _SignatureCache:
    """Projects' signatures kept between reads, least recently used first, CACHE_BYTES at most; safe to share
    between threads."""

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, int], _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pool: Any, project_id: int) -> _Kept | None:
        key = (id(pool), project_id)
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or kept.pool() is not pool:
                return None
            self._kept.move_to_end(key)
            return kept

    def put(self, pool: Any, project_id: int, kept: _Kept) -> None:
        key = (id(pool), project_id)
        with self._lock:
            self._kept.pop(key, None)
            if kept.nbytes > CACHE_BYTES:
                return
            self._kept[key] = kept
            total = sum(k.nbytes for k in self._kept.values())
            while total > CACHE_BYTES:
                _, dropped = self._kept.popitem(last=False)
                total -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def listing(self) -> list[tuple[int, int]]:
        with self._lock:
            return [(project_id, kept.nbytes) for (_, project_id), kept in self._kept.items()]


_CACHE = _SignatureCache()


def forget_signatures() -> None:
    """Drop every project's signatures kept in memory; the next read loads them from the database. Writes no
    data."""
    _CACHE.clear()


def kept_signatures() -> list[tuple[int, int]]:
    """(project id, bytes) of each project's signatures kept in memory (of any database), least recently read
    first. Read-only."""
    return _CACHE.listing()


def _pool(session: Session) -> Any:
    bind: Any = session.get_bind()
    return getattr(bind, "engine", bind).pool


def project_signatures(*, session: Session, project_ids: Sequence[int]) -> list[ProjectSignatures]:
    """The stored signatures with text to compare of these projects' item versions, current or not (leave out
    inactive_item_ids), one entry per project in the order asked. Kept in memory between reads and checked
    against the database each time, so a change is seen at once (see above). Read-only."""
    wanted = list(dict.fromkeys(int(p) for p in project_ids))
    if not wanted:
        return []
    pool = _pool(session)
    uncommitted = session.info.get(_WRITTEN_IN) is not None and session.info[_WRITTEN_IN] is session.get_transaction()
    # the replacements first, then the counts, then the rows: a change committed in between leaves the kept
    # rows newer than what they are checked against, never older
    replaced = _replacements(session, wanted)
    counts = _signature_counts(session, wanted)
    found = []
    for project_id in wanted:
        count, highest = counts.get(project_id, (0, 0))
        newest = replaced.get(project_id, (0, 0))
        kept = None if uncommitted else _CACHE.get(pool, project_id)
        if kept is None or kept.replaced != newest or not _same_rows(kept.all_ids, count, highest):
            kept = _refreshed(session, pool, project_id, kept, newest, count, highest)
            if not uncommitted:
                _CACHE.put(pool, project_id, kept)
        found.append(kept.signatures)
    return found


def _same_rows(all_ids: I64, count: int, highest: int) -> bool:
    return int(all_ids.size) == count and (int(all_ids[-1]) if all_ids.size else 0) == highest


def _replacements(session: Session, project_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Each project's number of "replace" events and the newest one's id (from the index on (entity, entity_id));
    the number too, as where writers commit in parallel an event can become visible after a newer one."""
    query = (
        columns_of(col(AuditEvent.entity_id), func.count(), func.max(AuditEvent.id))
        .where(col(AuditEvent.entity) == SIGNATURES_ENTITY, col(AuditEvent.entity_id).in_(project_ids))
        .group_by(col(AuditEvent.entity_id))
    )
    return {int(project_id): (int(count), int(newest)) for project_id, count, newest in session.execute(query).all()}


def _signature_counts(session: Session, project_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Each project's number of signature rows and highest item id, from the index on (project_id, item_id)
    (a count and a max per project: several times faster than one grouped count); no signature is read."""
    columns = []
    for project_id in project_ids:
        of_project = col(ItemSignature.project_id) == project_id
        columns.append(columns_of(func.count()).select_from(ItemSignature).where(of_project).scalar_subquery())
        columns.append(columns_of(func.max(ItemSignature.item_id)).where(of_project).scalar_subquery())
    values = session.execute(columns_of(*columns)).one()
    return {
        project_id: (int(values[2 * n] or 0), int(values[2 * n + 1] or 0)) for n, project_id in enumerate(project_ids)
    }


def _refreshed(
    session: Session,
    pool: Any,
    project_id: int,
    kept: _Kept | None,
    newest: tuple[int, int],
    count: int,
    highest: int,
) -> _Kept:
    """The project's signatures brought up to date: the rows added and replaced since they were kept, when every
    replacement since is known and the result then has the rows the database counts; else every row read again."""
    events, again = (0, []) if kept is None else _replaced_since(session, project_id, kept.replaced, newest)
    if kept is not None and kept.all_ids.size and kept.replaced[0] + events == newest[0]:
        last = int(kept.all_ids[-1])
        again = [item_id for item_id in again if item_id <= last]  # those above are read as added
        # two reads, each a range of the index (an OR of the two would read every row of the project)
        ids, usable, matrix = _read_rows(session, _rows_query(project_id).where(col(ItemSignature.item_id) > last))
        for chunk in _chunks(again):
            more = _read_rows(session, _rows_query(project_id).where(col(ItemSignature.item_id).in_(chunk)))
            ids, usable, matrix = (
                np.concatenate([ids, more[0]]),
                np.concatenate([usable, more[1]]),
                np.concatenate([matrix, more[2]]),
            )
        merged = _merged(kept, np.asarray(again, dtype=np.int64), ids, usable, matrix)
        if _same_rows(merged.all_ids, count, highest):
            return _Kept(weakref.ref(pool), newest, merged.all_ids, merged.signatures)
    ids, usable, matrix = _read_rows(session, _rows_query(project_id))
    signatures = ProjectSignatures(project_id, _frozen(ids[usable]), _by_columns(matrix))
    return _Kept(weakref.ref(pool), newest, _frozen(ids), signatures)


def _replaced_since(
    session: Session, project_id: int, kept: tuple[int, int], newest: tuple[int, int]
) -> tuple[int, list[int]]:
    """The "replace" events of the project's signatures newer than the kept ones: how many, and the items they
    name."""
    if kept == newest:
        return 0, []
    query = columns_of(col(AuditEvent.detail)).where(
        col(AuditEvent.entity) == SIGNATURES_ENTITY,
        col(AuditEvent.entity_id) == project_id,
        col(AuditEvent.id) > kept[1],
    )
    details = session.execute(query).scalars().all()
    found = {int(item_id) for detail in details for item_id in (_json(detail) or {}).get("item_ids", [])}
    return len(details), sorted(found)


def _rows_query(project_id: int) -> Any:
    return columns_of(col(ItemSignature.item_id), col(ItemSignature.shingles), col(ItemSignature.signature)).where(
        col(ItemSignature.project_id) == project_id
    )


def _read_rows(session: Session, query: Any) -> tuple[I64, npt.NDArray[np.bool_], U32]:
    """(item ids ascending, which have text, the signatures of those that have) of the rows the query selects."""
    if session.get_bind().dialect.name == "sqlite" and _utf8(session):
        ids, usable, joined = _read_concatenated(session, query)
    else:
        rows = driver_rows(session, query)
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        usable = np.fromiter((row[1] > 0 for row in rows), dtype=np.bool_, count=len(rows))
        joined = b"".join([row[2] for row in rows if row[1] > 0])
    if len(joined) != SIGNATURE_BYTES * int(usable.sum()):
        raise ValueError(f"a stored signature does not have {SIGNATURE_BYTES} bytes")
    matrix = np.frombuffer(joined, dtype="<u4").reshape(-1, SIGNATURE_VALUES).astype(np.uint32, copy=False)
    if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # the database's order: put in id order
        order = np.argsort(ids, kind="stable")
        matrix_row = np.cumsum(usable) - 1  # each row's place among those with text
        ids, usable = ids[order], usable[order]
        matrix = matrix[matrix_row[order[usable]]]
    return ids, usable, matrix


def _utf8(session: Session) -> bool:
    (encoding,) = driver_rows(session, text("PRAGMA encoding"))[0]
    return str(encoding).upper() == "UTF-8"


def _read_concatenated(session: Session, query: Any) -> tuple[I64, npt.NDArray[np.bool_], bytes]:
    """The query's rows as one row of SQLite's group_concat: the item ids, whether each has text, and the
    signatures of those that have, one after another (the three gathered in the same pass, so in the same
    order); a fifth faster than fetching 50,000 rows, and no Python object per row."""
    rows = query.subquery()
    with_text = rows.c.shingles > 0
    concatenated = columns_of(
        func.group_concat(rows.c.item_id),
        func.group_concat(case((with_text, 1), else_=0)),
        cast(func.group_concat(case((with_text, rows.c.signature)), ""), LargeBinary),
    )
    ids_text, usable_text, joined = driver_rows(session, concatenated)[0]
    if not ids_text:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_), b""
    ids = np.fromstring(ids_text, dtype=np.int64, sep=",")
    usable = np.frombuffer(usable_text.encode("ascii"), dtype=np.uint8)[::2] == ord("1")
    return ids, usable, bytes(joined or b"")


@dataclass(frozen=True)
class _Merged:
    all_ids: I64
    signatures: ProjectSignatures


def _merged(kept: _Kept, again: I64, ids: I64, usable: npt.NDArray[np.bool_], matrix: U32) -> _Merged:
    """The kept rows with the rows read (those added, and those read again in place of the kept ones), in
    ascending item id order."""
    old = kept.signatures
    all_ids = np.concatenate([kept.all_ids[~np.isin(kept.all_ids, again)], ids])
    if not bool(np.all(all_ids[1:] > all_ids[:-1])):
        all_ids = np.sort(all_ids)
    read_ids, read_columns = ids[usable], _by_columns(matrix).T
    replacing = np.isin(read_ids, old.item_ids)
    stay = ~np.isin(old.item_ids, again) | np.isin(old.item_ids, read_ids)
    columns = old.matrix.T if bool(stay.all()) else old.matrix.T[:, stay]
    item_ids = old.item_ids[stay]
    if replacing.any():  # an item edited in place: its new signature where the old one was
        columns = columns.copy()
        columns[:, np.searchsorted(item_ids, read_ids[replacing])] = read_columns[:, replacing]
    if not bool(replacing.all()):
        item_ids = np.concatenate([item_ids, read_ids[~replacing]])
        columns = np.concatenate([columns, read_columns[:, ~replacing]], axis=1)
        if not bool(np.all(item_ids[1:] > item_ids[:-1])):
            by_id = np.argsort(item_ids, kind="stable")
            item_ids, columns = item_ids[by_id], columns[:, by_id]
    return _Merged(_frozen(all_ids), ProjectSignatures(old.project_id, _frozen(item_ids), _frozen(columns).T))


def _frozen(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    values = np.ascontiguousarray(values)
    values.flags.writeable = False
    return values


def _by_columns(matrix: U32) -> U32:
    """An (n x 128) matrix stored column by column (the transpose of a C-ordered 128 x n array): comparing one
    signature with every row then reads each of the 128 values of every item in one sweep, two to three times
    faster than row by row. Copied in blocks of rows, twice as fast as numpy's plain transpose."""
    columns = np.empty((matrix.shape[1], matrix.shape[0]), dtype=np.uint32)
    for start in range(0, matrix.shape[0], _TRANSPOSE_ROWS):
        columns[:, start : start + _TRANSPOSE_ROWS] = matrix[start : start + _TRANSPOSE_ROWS].T
    columns.flags.writeable = False
    return columns.T


def inactive_item_ids(*, session: Session, project_ids: Sequence[int]) -> I64:
    """Ids of these projects' item versions that are not compared: earlier versions and retired items, in
    ascending order (two reads of the index on (project_id, is_current, status)). Read-only."""
    wanted = [int(p) for p in project_ids]
    if not wanted:
        return np.empty(0, dtype=np.int64)
    earlier = columns_of(col(Item.id)).where(col(Item.project_id).in_(wanted), col(Item.is_current) == False)  # noqa: E712
    retired = columns_of(col(Item.id)).where(
        col(Item.project_id).in_(wanted),
        col(Item.is_current) == True,  # noqa: E712
        col(Item.status) == "retired",
    )
    ids = session.execute(union_all(earlier, retired)).scalars().all()
    return np.unique(np.array(ids, dtype=np.int64))


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


def project_sets(*, session: Session) -> dict[int, tuple[str, bool]]:
    """Project ids → (name, whether it is a reference set), in one read. Read-only."""
    query = select(Project.id, Project.name, Project.is_reference)
    return {
        int(project_id): (name, bool(is_reference))
        for project_id, name, is_reference in session.exec(query).all()
        if project_id is not None
    }


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

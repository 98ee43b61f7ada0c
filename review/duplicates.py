"""Near-duplicates and contamination: items that nearly copy another item of their project, or an item
of a reference project (a public benchmark imported as a reference set).

Rules:
- Every item version gets a MinHash signature of its text (see review.similarity) when it is imported
  or checked; `scan_project` signs the items imported before and checks them all.
- An item is compared with the current, not retired items of its own project and, in a project that is
  not a reference set, with those of every reference project; an item of a reference project is compared
  with its own project and with every project that is not a reference set, so a copy is found whichever
  of the two was imported first. Every candidate is compared exactly (the signature comparison finds
  every pair at or above the threshold; see similarity.candidate_pairs).
- A pair at or above the project's threshold (estimated Jaccard similarity, default 0.7) is flagged once:
  in one project, on the newer item (the higher id) against the older; against a reference set, on the
  item that is not a reference item (scope "reference"). At most MAX_FLAGS_PER_ITEM flags, the most
  similar, are added per item and check, and an exact copy (the same signature) of several items is
  flagged against the oldest of them only: a file of many copies of a few items gives one flag per copy,
  not one per pair. A pair flagged before is never flagged again, whatever its status, so a dismissed
  flag stays dismissed.
- A curator or an admin dismisses a flag (not a copy) or opens it again, with a note; audited. Open
  flags whose item or match is retired or replaced by a new version are marked resolved at the next
  check, and are not listed as open meanwhile.
- Texts of fewer than two words have no shingles and are never matched.

The stored signatures are read through storage.similarity.project_signatures, which keeps each project's in
memory between checks and checks them against the database on every read (an import, an edit, a new version
or a retirement is seen at once); one check of a new item against 50,000 then compares 6.4 million values in
memory instead of reading 25 MB.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from review import similarity
from review.catalog import summary_of
from review.oversight import may_oversee
from storage import audit, projects
from storage import similarity as signatures_store
from storage.models import utcnow

SCOPES = ("project", "reference")
FLAG_STATUSES = ("open", "dismissed", "resolved")
DECISIONS = ("open", "dismissed")
MAX_FLAGS_PER_ITEM = 3
DIRECT_QUERIES = 32  # up to this many new signatures, compare each with every stored one directly
STALE_NOTE = "the item or its match was retired or replaced by a new version"
NO_LONGER_REFERENCE = "the matched project is no longer a reference set"

I64 = npt.NDArray[np.int64]


class DuplicateError(ValueError):
    """A near-duplicate request that cannot be carried out; the message is meant for the curator."""


@dataclass(frozen=True)
class Match:
    """Another item that the checked item nearly copies (or that nearly copies it)."""

    item_id: int
    external_id: str
    project: str
    scope: str  # 'project' | 'reference'
    similarity: float
    summary: str
    flag_id: int | None = None
    status: str = "open"


@dataclass(frozen=True)
class FlagRow:
    """One stored duplicate flag, for a project's list."""

    flag_id: int
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


@dataclass
class ScanReport:
    """What a scan of a project did."""

    project: str
    threshold: float
    items: int = 0  # current, not retired items checked
    signed: int = 0  # signatures computed (items without one)
    without_text: int = 0  # items with too little text to compare
    matches: int = 0  # pairs at or above the threshold
    flags_added: int = 0
    open_flags: int = 0
    seconds: float = 0.0


# --- checks ------------------------------------------------------------------------------------------------


def check_threshold(threshold: Any) -> float:
    """The threshold as a float, or DuplicateError saying what is wrong. Pure."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise DuplicateError(f"threshold: {threshold!r} is not a number from 0 to 1") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise DuplicateError(f"threshold: {threshold!r} must be more than 0 and at most 1 (e.g. 0.7)")
    return value


def _project(session: Session, project_id: int) -> Any:
    project = projects.get_project(session=session, project_id=project_id)
    if project is None or project.id is None:
        raise DuplicateError(f"There is no project with id {project_id}.")
    return project


def _require_overseer(session: Session, actor_id: int | None, doing: str) -> None:
    # None: the command line, run by whoever holds the database
    if actor_id is not None and not may_oversee(session, user_id=actor_id):
        raise DuplicateError(f"Only a curator or an admin can {doing}.")


# --- the corpus an item is compared with -------------------------------------------------------------------


@dataclass
class _Corpus:
    item_ids: I64
    project_ids: I64
    matrix: npt.NDArray[np.uint32]
    reference: dict[int, bool]  # project id → is a reference set
    names: dict[int, str]


def _projects_compared(
    session: Session, project_id: int, is_reference: bool
) -> tuple[list[int], dict[int, bool], dict[int, str]]:
    """The projects an item of this project is compared with (its own first), which are reference sets, and
    every project's name. Read-only."""
    sets = signatures_store.project_sets(session=session)
    names = {pid: name for pid, (name, _) in sets.items()}
    reference = {pid: is_reference for pid, (_, is_reference) in sets.items()}
    others = [pid for pid in names if pid != project_id and reference[pid] != is_reference]
    return [project_id, *others], reference, names


def _corpus(session: Session, project_id: int, is_reference: bool) -> _Corpus:
    """The signatures an item of this project is compared with (see the rules above). Read-only."""
    compared, reference, names = _projects_compared(session, project_id, is_reference)
    pieces = signatures_store.project_signatures(session=session, project_ids=compared)
    inactive = signatures_store.inactive_item_ids(session=session, project_ids=compared)
    active = [~np.isin(piece.item_ids, inactive) for piece in pieces]
    pairs = list(zip(pieces, active, strict=True))
    return _Corpus(
        np.concatenate([piece.item_ids[keep] for piece, keep in pairs]),
        np.concatenate([np.full(int(keep.sum()), piece.project_id, dtype=np.int64) for piece, keep in pairs]),
        np.concatenate([piece.matrix[keep] for piece, keep in pairs]),
        reference,
        names,
    )


def _with_new(corpus: _Corpus, item_ids: I64, project_id: int, matrix: npt.NDArray[np.uint32]) -> _Corpus:
    """The corpus with these items' new signatures in place of their stored ones."""
    keep = ~np.isin(corpus.item_ids, item_ids)
    return _Corpus(
        np.concatenate([corpus.item_ids[keep], item_ids]),
        np.concatenate([corpus.project_ids[keep], np.full(item_ids.size, project_id, dtype=np.int64)]),
        np.concatenate([corpus.matrix[keep], matrix]),
        corpus.reference,
        corpus.names,
    )


# --- matching (numpy) --------------------------------------------------------------------------------------


def _pairs_at_or_above(
    queries: npt.NDArray[np.uint32], corpus: npt.NDArray[np.uint32], threshold: float
) -> tuple[I64, I64, npt.NDArray[np.float64]]:
    """Every (query row, corpus row, similarity) at or above the threshold."""
    needed = similarity.agreements_needed(threshold)
    if queries.shape[0] == 0 or corpus.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    if queries.shape[0] <= DIRECT_QUERIES:
        found_q, found_c, found_s = [], [], []
        for row in range(queries.shape[0]):
            agree = similarity.agreements(queries[row], corpus).astype(np.int64)
            hits = np.flatnonzero(agree >= needed)
            found_q.append(np.full(hits.size, row, dtype=np.int64))
            found_c.append(hits.astype(np.int64))
            found_s.append(agree[hits] / similarity.NUM_PERM)
        return np.concatenate(found_q), np.concatenate(found_c), np.concatenate(found_s)
    # identical signatures (exact copies) are compared once, then expanded to every item that has them
    unique_q, q_groups = _identical_rows(queries)
    unique_c, c_groups = _identical_rows(corpus)
    cand_q, cand_c = similarity.candidate_pairs(unique_q, unique_c, threshold)
    scores = similarity.pair_similarities(unique_q, unique_c, cand_q, cand_c)
    keep = scores * similarity.NUM_PERM >= needed - 1e-9
    cand_q, cand_c, scores = cand_q[keep], cand_c[keep], scores[keep]
    rows_q, pick = _expand(q_groups, cand_q)
    cand_c, scores = cand_c[pick], scores[pick]
    rows_c, pick = _expand(c_groups, cand_c)
    return rows_q[pick], rows_c, scores[pick]


@dataclass
class _Groups:
    order: I64  # rows, grouped
    starts: I64  # first position in order of each group
    sizes: I64


def _identical_rows(matrix: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint32], _Groups]:
    """The distinct rows of a signature matrix, and which rows each stands for."""
    keys = matrix[:, 0].astype(np.uint64)
    for column in range(1, matrix.shape[1]):
        keys = keys * np.uint64(0x9E3779B97F4A7C15) + matrix[:, column].astype(np.uint64)
    order = np.argsort(keys, kind="stable").astype(np.int64)
    sorted_keys = keys[order]
    new = np.empty(order.size, dtype=bool)
    new[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    starts = np.flatnonzero(new).astype(np.int64)
    sizes = np.diff(np.append(starts, order.size)).astype(np.int64)
    representatives = matrix[order[starts]]
    group_of = np.repeat(np.arange(starts.size), sizes)
    if not np.array_equal(matrix[order], representatives[group_of]):  # two rows share a key: compare all
        everything = np.arange(matrix.shape[0], dtype=np.int64)
        return matrix, _Groups(everything, everything, np.ones(matrix.shape[0], dtype=np.int64))
    return representatives, _Groups(order, starts, sizes)


def _expand(groups: _Groups, group_ids: I64) -> tuple[I64, I64]:
    """Each group id → every row it stands for; and, for each row, the index of its group id."""
    sizes = groups.sizes[group_ids]
    pick = np.repeat(np.arange(group_ids.size), sizes)
    offsets = np.arange(pick.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return groups.order[groups.starts[group_ids][pick] + offsets], pick


def _rank_within(groups: I64) -> I64:
    """0, 1, 2... within each run of equal values of a sorted array."""
    return np.arange(groups.size) - np.searchsorted(groups, groups, side="left")


@dataclass(frozen=True)
class _Found:
    checked: int  # the item that was checked
    other: int  # the item it nearly copies, or that nearly copies it
    flagged: int  # the item the flag is on
    match: int
    project_id: int  # the flagged item's project
    scope: str
    similarity: float


def _found(
    query_ids: I64,
    query_project: int,
    queries: npt.NDArray[np.uint32],
    corpus: _Corpus,
    threshold: float,
) -> list[_Found]:
    """The pairs to flag for these query items against the corpus (see the rules above)."""
    rows_q, rows_c, scores = _pairs_at_or_above(queries, corpus.matrix, threshold)
    checked, other = query_ids[rows_q], corpus.item_ids[rows_c]
    other_project = corpus.project_ids[rows_c]
    same_project = other_project == query_project
    query_reference = corpus.reference.get(query_project, False)
    reference_ids = np.array([pid for pid, is_reference in corpus.reference.items() if is_reference], dtype=np.int64)
    other_reference = np.isin(other_project, reference_ids)
    # each pair of checked items once (from the newer), never an item with itself
    both_checked = np.isin(other, query_ids)
    keep = (
        (checked != other) & (same_project | (other_reference != query_reference)) & ~(both_checked & (checked < other))
    )
    checked, other, other_project, same_project, scores = (
        checked[keep],
        other[keep],
        other_project[keep],
        same_project[keep],
        scores[keep],
    )
    if query_reference:
        flagged = np.where(same_project, np.maximum(checked, other), other)
        match = np.where(same_project, np.minimum(checked, other), checked)
        flag_project = np.where(same_project, query_project, other_project)
    else:
        flagged = np.where(same_project, np.maximum(checked, other), checked)
        match = np.where(same_project, np.minimum(checked, other), other)
        flag_project = np.full(checked.size, query_project, dtype=np.int64)
    # per flagged item, the most similar first (then the oldest): one identical signature at most, then
    # at most MAX_FLAGS_PER_ITEM in all
    order = np.lexsort((match, -scores, flagged))
    rank = _rank_within(flagged[order])
    order = order[(scores[order] < 1.0) | (rank == 0)]
    chosen = order[_rank_within(flagged[order]) < MAX_FLAGS_PER_ITEM]
    chosen = chosen[np.lexsort((match[chosen], -scores[chosen]))]
    return [
        _Found(
            checked=int(checked[i]),
            other=int(other[i]),
            flagged=int(flagged[i]),
            match=int(match[i]),
            project_id=int(flag_project[i]),
            scope="project" if same_project[i] else "reference",
            similarity=round(float(scores[i]), 4),
        )
        for i in chosen
    ]


# --- use cases ---------------------------------------------------------------------------------------------


def find_matches(
    session: Session,
    *,
    project_id: int,
    kind: str,
    conversation: list[dict[str, Any]],
    question: str | None,
    options: dict[str, str],
    exclude_external_id: str | None = None,
    threshold: float | None = None,
    limit: int = 20,
) -> list[Match]:
    """Items that unsaved editor content nearly copies: the project's current items (other than the one
    being edited) and every reference project's, most similar first. Read-only (keeps the projects'
    signatures in memory, see storage.similarity.project_signatures)."""
    project = _project(session, project_id)
    wanted = check_threshold(project.duplicate_threshold if threshold is None else threshold)
    value, count = similarity.signature(similarity.item_text(kind, conversation, question, options))
    if count == 0:
        return []
    compared, _, _ = _projects_compared(session, project_id, project.is_reference)
    needed = similarity.agreements_needed(wanted)
    found_ids, found_projects, found_agreements = [], [], []
    for piece in signatures_store.project_signatures(session=session, project_ids=compared):
        agree = similarity.agreements(value, piece.matrix)
        hits = np.flatnonzero(agree >= needed)
        found_ids.append(piece.item_ids[hits])
        found_projects.append(np.full(hits.size, piece.project_id, dtype=np.int64))
        found_agreements.append(agree[hits].astype(np.int64))
    item_ids, project_ids = np.concatenate(found_ids), np.concatenate(found_projects)
    scores = np.concatenate(found_agreements) / similarity.NUM_PERM
    keep = ~np.isin(item_ids, signatures_store.inactive_item_ids(session=session, project_ids=compared))
    if exclude_external_id is not None:
        edited = signatures_store.current_item_id(
            session=session, project_id=project_id, external_id=exclude_external_id
        )
        if edited is not None:
            keep &= item_ids != edited
    item_ids, project_ids, scores = item_ids[keep], project_ids[keep], scores[keep]
    ranked = np.lexsort((item_ids, -scores))[: max(limit, 0)]
    briefs = signatures_store.item_briefs(session=session, item_ids=[int(i) for i in item_ids[ranked]])
    return [
        Match(
            item_id=int(item_ids[i]),
            external_id=briefs[int(item_ids[i])].external_id,
            project=briefs[int(item_ids[i])].project,
            scope="project" if int(project_ids[i]) == project_id else "reference",
            similarity=round(float(scores[i]), 4),
            summary=summary_of(briefs[int(item_ids[i])]),
        )
        for i in ranked
        if int(item_ids[i]) in briefs
    ]


def check_items(session: Session, *, item_ids: list[int], actor_id: int | None = None) -> list[tuple[int, Match]]:
    """Sign these item versions (replacing old signatures), compare them with their project's other items
    and the reference sets (and with each other), and flag matches at or above the project's threshold.
    Returns (checked item id, match) pairs, each pair of items once, most similar first. Commits."""
    versions = signatures_store.items_for_check(session=session, item_ids=item_ids)
    session.commit()  # hold no lock while computing
    return check_versions(session, versions=versions, actor_id=actor_id)


def check_versions(
    session: Session, *, versions: Sequence[signatures_store.ItemForCheck], actor_id: int | None = None
) -> list[tuple[int, Match]]:
    """check_items for item versions already in hand (an import has their text): the same checks, without
    reading the items again. Commits."""
    del actor_id  # the flags a check adds are the system's; curators' decisions on them are audited
    versions = list(versions)
    if not versions:
        return []
    computed = similarity.signatures(
        [similarity.item_text(v.kind, v.conversation, v.question, v.options) for v in versions]
    )
    by_project: dict[int, list[int]] = {}
    for position, version in enumerate(versions):
        if version.is_current and version.status != "retired" and computed[position][1] > 0:
            by_project.setdefault(version.project_id, []).append(position)
    found: list[_Found] = []
    for project_id, positions in by_project.items():
        project = _project(session, project_id)
        wanted = check_threshold(project.duplicate_threshold)
        corpus = _corpus(session, project_id, project.is_reference)
        session.commit()
        query_ids = np.array([versions[p].item_id for p in positions], dtype=np.int64)
        queries = similarity.signature_matrix(computed[p][0] for p in positions)
        found.extend(_found(query_ids, project_id, queries, _with_new(corpus, query_ids, project_id, queries), wanted))
    signatures_store.replace_signatures(
        session=session,
        rows=[
            {"item_id": v.item_id, "project_id": v.project_id, "signature": value, "shingles": count}
            for v, (value, count) in zip(versions, computed, strict=True)
        ],
    )
    return _store_flags(session, found, versions)[0]


def _store_flags(
    session: Session, found: list[_Found], versions: list[signatures_store.ItemForCheck]
) -> tuple[list[tuple[int, Match]], int]:
    """Add the flags found (resolving stale ones) and return them as (checked item, match) pairs, and
    how many flags are new. Commits."""
    stored = signatures_store.add_flags(
        session=session,
        rows=[
            {
                "project_id": f.project_id,
                "item_id": f.flagged,
                "match_item_id": f.match,
                "similarity": f.similarity,
                "scope": f.scope,
                "created_at": utcnow(),
            }
            for f in found
        ],
    )
    signatures_store.resolve_stale_flags(session=session, note=STALE_NOTE)
    briefs = _briefs(session, versions, [f.other for f in found])
    session.commit()
    summaries = {item_id: summary_of(brief) for item_id, brief in briefs.items()}
    pairs = []
    for f in found:
        brief = briefs[f.other]
        flag = stored[(f.flagged, f.match)]
        match = Match(
            item_id=f.other,
            external_id=brief.external_id,
            project=brief.project,
            scope=f.scope,
            similarity=f.similarity,
            summary=summaries[f.other],
            flag_id=flag.flag_id,
            status=flag.status,
        )
        pairs.append((f.checked, match))
    return pairs, sum(1 for flag in stored.values() if flag.added)


def _briefs(
    session: Session, versions: list[signatures_store.ItemForCheck], wanted: list[int]
) -> dict[int, signatures_store.ItemBrief]:
    """Previews of the matched items: those checked from memory, the others from the database. Read-only."""
    known = {v.item_id: v for v in versions}
    result = signatures_store.item_briefs(session=session, item_ids={i for i in wanted if i not in known})
    here = set(wanted) & known.keys()
    if here:
        names = signatures_store.project_names(session=session)
        for item_id in here:
            v = known[item_id]
            result[item_id] = signatures_store.ItemBrief(
                v.item_id, v.external_id, v.project_id, names.get(v.project_id, ""), v.kind, v.question, v.conversation
            )
    return result


def flags_for_item(session: Session, *, item_id: int, include_closed: bool = False) -> list[Match]:
    """The duplicate flags that involve one item version (either side), as the other item, most similar
    first; open ones only unless include_closed. Read-only."""
    listings = signatures_store.list_item_flags(session=session, item_id=item_id, include_closed=include_closed)
    others = [f.match_item_id if f.item_id == item_id else f.item_id for f in listings]
    briefs = signatures_store.item_briefs(session=session, item_ids=others)
    return [
        Match(
            item_id=other,
            external_id=briefs[other].external_id,
            project=briefs[other].project,
            scope=f.scope,
            similarity=f.similarity,
            summary=summary_of(briefs[other]),
            flag_id=f.flag_id,
            status=f.status,
        )
        for f, other in zip(listings, others, strict=True)
    ]


def project_flags(session: Session, *, project_id: int, status: str | None = "open") -> list[FlagRow]:
    """The duplicate flags on a project's items and, for a reference set, the flags on other projects' items
    that copy its items (all statuses when status is None), most similar first. Read-only."""
    if status is not None and status not in FLAG_STATUSES:
        raise DuplicateError(f"status: one of {', '.join(FLAG_STATUSES)}, not {status!r}")
    project = _project(session, project_id)
    listings = signatures_store.list_project_flags(
        session=session, project_id=project_id, status=status, copies_elsewhere=bool(project.is_reference)
    )
    return [
        FlagRow(
            flag_id=f.flag_id,
            item_id=f.item_id,
            item_external_id=f.item_external_id,
            item_project=f.item_project,
            match_item_id=f.match_item_id,
            match_external_id=f.match_external_id,
            match_project=f.match_project,
            similarity=f.similarity,
            scope=f.scope,
            status=f.status,
            note=f.note,
        )
        for f in listings
    ]


def set_flag_status(session: Session, *, flag_id: int, status: str, actor_id: int, note: str = "") -> None:
    """Dismiss a flag (not a copy) or open it again, with a note; audited. Commits."""
    _require_overseer(session, actor_id, "decide on a duplicate flag")
    if status not in DECISIONS:
        raise DuplicateError(f"status: 'dismissed' (not a copy) or 'open', not {status!r}")
    flag = signatures_store.get_flag(session=session, flag_id=flag_id)
    if flag is None:
        raise DuplicateError("That duplicate flag no longer exists.")
    before = {"status": flag.status, "note": flag.note}
    note = (note or "").strip()
    signatures_store.set_flag_status(
        session=session, flag_id=flag_id, status=status, note=note, decided_by=actor_id, decided_at=utcnow()
    )
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="dismiss_duplicate" if status == "dismissed" else "reopen_duplicate",
        entity="duplicate_flag",
        entity_id=flag_id,
        project_id=flag.project_id,
        detail={
            "item_id": flag.item_id,
            "match_item_id": flag.match_item_id,
            "similarity": flag.similarity,
            "before": before,
            "after": {"status": status, "note": note},
        },
    )
    session.commit()


def scan_project(
    session: Session, *, project_id: int, threshold: float | None = None, actor_id: int | None = None
) -> ScanReport:
    """Sign the project's current items that have no signature yet, then check every current item against
    the project's threshold (or this one, for this scan only). Commits."""
    del actor_id  # as in check_items
    started = time.perf_counter()
    project = _project(session, project_id)
    wanted = check_threshold(project.duplicate_threshold if threshold is None else threshold)
    report = ScanReport(project=project.name, threshold=wanted)
    unsigned = signatures_store.unsigned_items(session=session, project_id=project_id)
    session.commit()
    if unsigned:
        computed = similarity.signatures(
            [similarity.item_text(v.kind, v.conversation, v.question, v.options) for v in unsigned]
        )
        signatures_store.replace_signatures(
            session=session,
            rows=[
                {"item_id": v.item_id, "project_id": v.project_id, "signature": value, "shingles": count}
                for v, (value, count) in zip(unsigned, computed, strict=True)
            ],
        )
        session.commit()
        report.signed = len(unsigned)
    report.items = len(signatures_store.active_item_ids(session=session, project_id=project_id))
    report.without_text = signatures_store.count_without_text(session=session, project_id=project_id)
    corpus = _corpus(session, project_id, project.is_reference)
    session.commit()
    own = corpus.project_ids == project_id
    found = _found(corpus.item_ids[own], project_id, corpus.matrix[own], corpus, wanted)
    pairs, report.flags_added = _store_flags(session, found, [])
    report.matches = len(pairs)
    report.open_flags = len(project_flags(session, project_id=project_id, status="open"))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def set_reference(
    session: Session, *, project_id: int, is_reference: bool, actor_id: int | None, scan: bool = True
) -> None:
    """Make a project a reference set (then, unless scan is False, its items are checked against every other
    project's and copies of them flagged there) or an ordinary project again (its open reference flags are
    resolved); audited. Commits."""
    _require_overseer(session, actor_id, "change whether a project is a reference set")
    project = _project(session, project_id)
    before = bool(project.is_reference)
    projects.update_project(session=session, project_id=project_id, is_reference=bool(is_reference))
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="update",
        entity="project",
        entity_id=project_id,
        project_id=project_id,
        detail={"is_reference": {"before": before, "after": bool(is_reference)}},
    )
    if before != bool(is_reference):
        after_reference_change(
            session, project_id=project_id, is_reference=bool(is_reference), actor_id=actor_id, scan=scan
        )
    else:
        session.commit()


def after_reference_change(
    session: Session, *, project_id: int, is_reference: bool, actor_id: int | None, scan: bool = True
) -> None:
    """What follows a project becoming a reference set (unless scan is False, its items are checked against
    every other project's and copies flagged there) or an ordinary project again (its open reference flags
    are resolved). The change itself is stored by the caller. Commits."""
    if not is_reference:
        signatures_store.resolve_reference_flags(
            session=session, reference_project_id=project_id, note=NO_LONGER_REFERENCE
        )
    session.commit()
    if scan and is_reference:
        scan_project(session, project_id=project_id, actor_id=actor_id)


def set_threshold(session: Session, *, project_id: int, threshold: float, actor_id: int | None) -> None:
    """Change a project's near-duplicate threshold (more than 0, at most 1); audited. Commits.

    Flags already stored stay; `scan_project` adds those the new threshold finds.
    """
    _require_overseer(session, actor_id, "change the duplicate threshold")
    value = check_threshold(threshold)
    project = _project(session, project_id)
    before = float(project.duplicate_threshold)
    projects.update_project(session=session, project_id=project_id, duplicate_threshold=value)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="update",
        entity="project",
        entity_id=project_id,
        project_id=project_id,
        detail={"duplicate_threshold": {"before": before, "after": value}},
    )
    session.commit()

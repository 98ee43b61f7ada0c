"""Use cases: import items (HealthBench, MedQA, CSV) and model answers into a project.

The whole file is validated before anything is written; conflicts are found before anything is
written; then rows are written in batches, each its own short transaction, so physicians
working at the same time wait milliseconds, not seconds. Re-importing the same rows adds
nothing, so an import cut off half-way is completed by running it again.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ParamSpec, TypeVar

from sqlmodel import Session

from review import duplicates
from review.formats import (
    MAX_FILE_BYTES,
    InvalidInput,
    ParsedItem,
    Problem,
    check_size,
    content_hash,
    parse_answers,
    parse_items,
)
from storage import audit, items, projects
from storage.models import utcnow
from storage.similarity import ItemForCheck

ON_CONFLICT = ("error", "new-version", "skip")
EDITED_IN_PLACE = ("item.edited", "item.tags")  # audit actions of changes to an item's content without a new row
STATUSES = ("draft", "in_review", "approved", "retired")
REFERENCE_MODEL = "healthbench-ref-{slot}"
BATCH_ITEMS = 500
# Raise when parsing, validation or hashing changes, so files imported before are parsed again.
PARSER_VERSION = 1
REPORTED_DUPLICATES = 1000  # near-duplicate pairs listed in an import report (all are counted and flagged)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_cyclic_gc(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Pause Python's cyclic garbage collector while the function runs.

    An import builds hundreds of thousands of dicts and lists that all stay alive until it ends;
    the collector would walk them again and again (a third of the time of a 5,000-item import)
    without finding anything to free. Reference counting still frees everything as usual.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


class ImportConflict(InvalidInput):
    """Rows whose external id exists in the project with different content."""


@dataclass
class ImportReport:
    """What an import did, in counts a curator can check."""

    filename: str
    format: str
    project: str
    items_added: int = 0
    items_unchanged: int = 0
    items_new_version: int = 0
    items_skipped: int = 0
    criteria_added: int = 0
    answers_added: int = 0
    answers_unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    batch_id: int | None = None
    seconds: float = 0.0
    # new items that nearly copy another item of the project or of a reference project (flagged)
    near_duplicates: int = 0
    # the most similar of them: {external_id, match_external_id, match_project, scope, similarity}
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_project(session: Session, name: str, *, actor_id: int | None = None) -> int:
    """Return the id of the project with this name, creating it if needed. Flushes."""
    name = name.strip()
    if not name:
        raise InvalidInput([Problem("project", None, "name", "the project name is empty")])
    project = projects.get_project_by_name(session=session, name=name)
    if project is None:
        project = projects.add_project(session=session, name=name, created_by=actor_id)
        audit.add_audit_event(
            session=session,
            actor_id=actor_id,
            action="create",
            entity="project",
            entity_id=project.id,
            project_id=project.id,
            detail={"name": name},
        )
    assert project.id is not None
    return project.id


@_without_cyclic_gc
def import_items(
    session: Session,
    *,
    project_name: str,
    data: bytes,
    filename: str,
    fmt: str = "auto",
    status: str = "draft",
    with_reference_answers: bool = False,
    on_conflict: str = "error",
    actor_id: int | None = None,
    batch_items: int = BATCH_ITEMS,
    max_bytes: int | None = None,
) -> ImportReport:
    """Validate a file and import its items into the project. Commits in batches.

    Raises InvalidInput (every problem, nothing written) or ImportConflict (ids named,
    nothing written) when on_conflict is "error".
    """
    started = time.perf_counter()
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    kwargs: dict[str, Any] = {"with_reference_answers": with_reference_answers}
    if max_bytes is not None:
        kwargs["max_bytes"] = max_bytes
    check_size(len(data), filename, MAX_FILE_BYTES if max_bytes is None else max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    repeat = _identical_repeat(session, project_name, digest, fmt, with_reference_answers)
    if repeat is not None:
        return _record_repeat(session, repeat, filename, digest, actor_id, started)
    # End the look-up's transaction: in a write session it holds the write lock, and parsing a large
    # file takes seconds during which physicians must be able to save their work.
    session.commit()
    parsed = parse_items(data, filename, fmt, **kwargs)
    detected = parsed[0].source_format if parsed else fmt

    project_id = ensure_project(session, project_name, actor_id=actor_id)
    current = items.current_items_by_external_id(session=session, project_id=project_id)
    report = ImportReport(filename=filename, format=detected, project=project_name)

    unique: dict[str, ParsedItem] = {}
    for item in parsed:
        unique.setdefault(item.external_id, item)  # same id and hash repeated in one file
    to_add: list[ParsedItem] = []
    to_replace: list[tuple[ParsedItem, items.CurrentItem]] = []
    conflicts: list[Problem] = []
    item_id_of: dict[str, int] = {}
    for item in unique.values():
        existing = current.get(item.external_id)
        if existing is None:
            to_add.append(item)
        elif existing.content_hash == item.content_hash:
            report.items_unchanged += 1
            item_id_of[item.external_id] = existing.item_id
        elif on_conflict == "skip":
            report.items_skipped += 1
            report.conflicts.append(item.external_id)
        elif on_conflict == "new-version":
            to_replace.append((item, existing))
            report.conflicts.append(item.external_id)
        else:
            conflicts.append(
                Problem(
                    filename,
                    item.line,
                    item.id_field,
                    f"item {item.external_id!r} already exists in project {project_name!r} with "
                    "different content; use --on-conflict new-version or skip",
                )
            )
    report.items_unchanged += len(parsed) - len(unique)
    if conflicts:
        session.rollback()
        raise ImportConflict(conflicts)

    batch_id = items.add_import_batch(
        session=session,
        project_id=project_id,
        filename=filename,
        format=detected,
        sha256=digest,
        created_by=actor_id,
    )
    report.batch_id = batch_id
    session.commit()

    work: list[tuple[ParsedItem, items.CurrentItem | None]] = [(i, None) for i in to_add]
    work += to_replace
    new_versions: list[ItemForCheck] = []
    for start in range(0, len(work), batch_items):
        chunk = work[start : start + batch_items]
        rows = [_item_row(item, project_id, status, batch_id, actor_id, previous) for item, previous in chunk]
        replaced = [previous.item_id for _, previous in chunk if previous is not None]
        items.mark_not_current(session=session, item_ids=replaced)
        new_ids = items.add_items(session=session, rows=rows)
        new_versions.extend(_for_check(row, item_id) for row, item_id in zip(rows, new_ids, strict=True))
        criterion_rows: list[dict[str, Any]] = []
        for (item, previous), item_id in zip(chunk, new_ids, strict=True):
            item_id_of[item.external_id] = item_id
            if previous is None:
                report.items_added += 1
            else:
                report.items_new_version += 1
            criterion_rows.extend(
                {
                    "item_id": item_id,
                    "position": position,
                    "text": criterion.text,
                    "points": criterion.points,
                    "tags": criterion.tags,
                    "axis": criterion.axis,
                    "flagged": False,
                    "generated": False,
                    "accepted": True,
                }
                for position, criterion in enumerate(item.criteria)
            )
        report.criteria_added += items.add_criteria(session=session, rows=criterion_rows)
        session.commit()

    if with_reference_answers:
        _import_reference_answers(session, unique.values(), item_id_of, report)

    if new_versions:
        found = duplicates.check_versions(session, versions=new_versions, actor_id=actor_id)
        _report_duplicates(report, found, item_id_of)
    _finish_batch(session, report, project_id, actor_id, started, with_reference_answers)
    return report


def _for_check(row: dict[str, Any], item_id: int) -> ItemForCheck:
    """A new item version as the near-duplicate check needs it (its text is in hand)."""
    return ItemForCheck(
        item_id=item_id,
        project_id=row["project_id"],
        external_id=row["external_id"],
        kind=row["kind"],
        status=row["status"],
        is_current=True,
        conversation=row["conversation"],
        question=row["question"],
        options=row["options"],
    )


def _report_duplicates(
    report: ImportReport, found: list[tuple[int, duplicates.Match]], item_id_of: dict[str, int]
) -> None:
    """Count the near-duplicates a check found among the new items and list the most similar."""
    external_id_of = {item_id: external_id for external_id, item_id in item_id_of.items()}
    report.near_duplicates = len(found)
    report.duplicates = [
        {
            "external_id": external_id_of.get(item_id, str(item_id)),
            "match_external_id": match.external_id,
            "match_project": match.project,
            "scope": match.scope,
            "similarity": match.similarity,
        }
        for item_id, match in found[:REPORTED_DUPLICATES]
    ]


def _finish_batch(
    session: Session,
    report: ImportReport,
    project_id: int,
    actor_id: int | None,
    started: float,
    with_reference_answers: bool,
    **extra: Any,
) -> None:
    """Store an import's counts and what a later identical import needs to know; audit it. Commits."""
    assert report.batch_id is not None
    report.seconds = round(time.perf_counter() - started, 3)
    counts = {k: v for k, v in report.as_dict().items() if k not in ("conflicts", "filename", "duplicates")}
    counts.update(
        complete=True,
        parser_version=PARSER_VERSION,
        with_reference_answers=with_reference_answers,
        max_item_id_after=items.max_item_id(session=session, project_id=project_id),
        **extra,
    )
    items.set_import_counts(session=session, batch_id=report.batch_id, counts=counts)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="import",
        entity="import_batch",
        entity_id=report.batch_id,
        project_id=project_id,
        detail={"filename": report.filename, **counts, "conflicts": report.conflicts[:100]},
    )
    session.commit()


@dataclass(frozen=True)
class _Repeat:
    project_id: int
    project: str
    format: str
    rows: int
    answers: int
    with_reference_answers: bool


def _identical_repeat(
    session: Session, project_name: str, digest: str, fmt: str, with_reference_answers: bool
) -> _Repeat | None:
    """Recognise a file imported before whose import would change nothing now. Read-only.

    Items are never deleted, and a conflict or an edit of a graded item makes a new row, so when the
    project's highest item id is the one that an earlier complete import of the same bytes left (same
    parser, same options, nothing skipped) and no item of the project was edited in place since (the
    editor, or tags changed in bulk), that import's items are all still current and unchanged, and
    importing the file again adds nothing.
    """
    project = projects.get_project_by_name(session=session, name=project_name.strip())
    if project is None or project.id is None:
        return None
    batch = items.latest_import_batch(session=session, project_id=project.id, sha256=digest)
    if batch is None:
        return None
    counts = batch.counts
    if (
        not counts.get("complete")
        or counts.get("parser_version") != PARSER_VERSION
        or counts.get("items_skipped", 0) != 0
        or fmt not in ("auto", batch.format)
        or (with_reference_answers and not counts.get("with_reference_answers"))
        or counts.get("max_item_id_after") != items.max_item_id(session=session, project_id=project.id)
        or audit.any_event_since(
            session=session, project_id=project.id, actions=EDITED_IN_PLACE, since=batch.created_at
        )
    ):
        return None
    rows = int(counts.get("items_added", 0) + counts.get("items_unchanged", 0) + counts.get("items_new_version", 0))
    answers = int(counts.get("answers_added", 0) + counts.get("answers_unchanged", 0)) if with_reference_answers else 0
    return _Repeat(project.id, project.name, batch.format, rows, answers, with_reference_answers)


def _record_repeat(
    session: Session, repeat: _Repeat, filename: str, digest: str, actor_id: int | None, started: float
) -> ImportReport:
    """Record an import of an unchanged file (provenance: who, when), which adds nothing. Commits."""
    report = ImportReport(
        filename=filename,
        format=repeat.format,
        project=repeat.project,
        items_unchanged=repeat.rows,
        answers_unchanged=repeat.answers,
    )
    report.batch_id = items.add_import_batch(
        session=session,
        project_id=repeat.project_id,
        filename=filename,
        format=repeat.format,
        sha256=digest,
        created_by=actor_id,
    )
    _finish_batch(
        session,
        report,
        repeat.project_id,
        actor_id,
        started,
        repeat.with_reference_answers,
        identical_to_earlier_import=True,
    )
    return report


def _item_row(
    item: ParsedItem,
    project_id: int,
    status: str,
    batch_id: int,
    actor_id: int | None,
    previous: items.CurrentItem | None,
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "external_id": item.external_id,
        "kind": item.kind,
        "version": 1 if previous is None else previous.version + 1,
        "is_current": True,
        "status": status,
        "specialties": item.specialties,
        "dimension": item.dimension,
        "tags": item.tags,
        "content_hash": item.content_hash,
        "conversation": item.conversation,
        "question": item.question,
        "options": item.options,
        "answer_key": item.answer_key,
        "explanation": item.explanation,
        "meta_info": item.meta_info,
        "extra": item.extra,
        "source_format": item.source_format,
        "previous_version_id": None if previous is None else previous.item_id,
        "import_batch_id": batch_id,
        "created_at": utcnow(),
        "created_by": actor_id,
    }


def _import_reference_answers(
    session: Session,
    parsed: Any,
    item_id_of: dict[str, int],
    report: ImportReport,
) -> None:
    wanted = [
        (item_id_of[item.external_id], slot, text)
        for item in parsed
        if item.external_id in item_id_of
        for slot, text in enumerate(item.reference_answers, start=1)
    ]
    if not wanted:
        return
    names = {REFERENCE_MODEL.format(slot=slot) for _, slot, _ in wanted}
    model_of = items.model_ids(session=session, names=names)
    existing = items.existing_answer_keys(session=session, item_ids=sorted({item_id for item_id, _, _ in wanted}))
    rows = []
    for item_id, slot, text in wanted:
        model_id = model_of[REFERENCE_MODEL.format(slot=slot)]
        key = (item_id, model_id, content_hash(text))
        if key in existing:
            report.answers_unchanged += 1
            continue
        existing.add(key)
        rows.append(_answer_row(item_id, model_id, text, "reference", slot))
    for start in range(0, len(rows), 2000):
        report.answers_added += items.add_answers(session=session, rows=rows[start : start + 2000])
        session.commit()


def _answer_row(item_id: int, model_id: int, text: str, source: str, slot: int | None) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "model_id": model_id,
        "text": text,
        "source": source,
        "slot": slot,
        "content_hash": content_hash(text),
        "option_order": [],
        "created_at": utcnow(),
    }


@dataclass
class AnswersReport:
    filename: str
    project: str
    answers_added: int = 0
    answers_unchanged: int = 0
    models: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@_without_cyclic_gc
def import_answers(
    session: Session,
    *,
    project_name: str,
    data: bytes,
    filename: str,
    actor_id: int | None = None,
    max_bytes: int | None = None,
) -> AnswersReport:
    """Import model answers ({external_id, model, answer} JSONL) to the current item versions.

    Validates every line (including that each external id exists in the project) before writing;
    re-importing the same answers adds nothing. Commits.
    """
    kwargs: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
    parsed = parse_answers(data, filename, **kwargs)
    project = projects.get_project_by_name(session=session, name=project_name)
    if project is None or project.id is None:
        raise InvalidInput([Problem(filename, None, None, f"there is no project named {project_name!r}")])
    current = items.current_items_by_external_id(session=session, project_id=project.id)
    problems = [
        Problem(filename, a.line, "external_id", f"no item {a.external_id!r} in project {project_name!r}")
        for a in parsed
        if a.external_id not in current
    ]
    if problems:
        raise InvalidInput(problems)
    report = AnswersReport(filename=filename, project=project_name)
    model_of = items.model_ids(session=session, names=[a.model for a in parsed])
    report.models = sorted(model_of)
    existing = items.existing_answer_keys(
        session=session, item_ids=sorted({current[a.external_id].item_id for a in parsed})
    )
    rows = []
    for answer in parsed:
        item_id = current[answer.external_id].item_id
        key = (item_id, model_of[answer.model], content_hash(answer.text))
        if key in existing:
            report.answers_unchanged += 1
            continue
        existing.add(key)
        rows.append(_answer_row(item_id, model_of[answer.model], answer.text, "import", None))
    for start in range(0, len(rows), 2000):
        report.answers_added += items.add_answers(session=session, rows=rows[start : start + 2000])
        session.commit()
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="import_answers",
        entity="project",
        entity_id=project.id,
        project_id=project.id,
        detail={k: v for k, v in report.as_dict().items() if k != "models"},
    )
    session.commit()
    return report

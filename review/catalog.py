"""Use cases behind the items screen: filtered pages of items and one item's full view."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from storage import items, projects, users

PAGE_SIZE = 25


@dataclass(frozen=True)
class ItemRow:
    item_id: int
    external_id: str
    kind: str
    status: str
    version: int
    specialties: str
    dimension: str
    tags: str
    flagged: str  # what is flagged about the item: criteria for rewriting, a possible duplicate
    summary: str


@dataclass(frozen=True)
class ItemFilters:
    """The Items page's filters; None / empty means "any"."""

    kind: str | None = None
    status: str | None = None
    specialty: str | None = None
    dimension: str | None = None
    text: str | None = None
    tags: tuple[str, ...] = ()
    flagged: bool = False

    def spec(self, project_id: int) -> items.ItemFilter:
        """The storage filter of the project's current items. Pure."""
        return items.ItemFilter(
            project_id=project_id,
            kind=self.kind or None,
            status=self.status or None,
            specialty=self.specialty or None,
            dimension=self.dimension or None,
            text=(self.text or "").strip() or None,
            tags=tuple(tag for tag in self.tags if tag),
            flagged=self.flagged,
        )

    @property
    def reads_rows(self) -> bool:
        """True when no index answers these filters (text, specialty, tags, flagged): every row is read. Pure."""
        return items.reads_rows(self.spec(0))


def summary_of(item: Any, width: int = 140) -> str:
    """A one-line preview: the MCQ stem or the last user turn. Read-only."""
    if item.kind == "mcq":
        text = item.question or ""
    else:
        users_turns = [m["content"] for m in item.conversation if m.get("role") == "user"]
        text = users_turns[-1] if users_turns else ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def flag_marks(flagged_criteria: int, open_duplicates: int) -> str:
    """What is flagged about an item, in words ("" when nothing is). Pure."""
    marks = []
    if flagged_criteria:
        marks.append(f"{flagged_criteria} {'criterion' if flagged_criteria == 1 else 'criteria'} to rewrite")
    if open_duplicates:
        marks.append("possible duplicate" if open_duplicates == 1 else f"{open_duplicates} possible duplicates")
    return "; ".join(marks)


def count_items(session: Session, *, project_id: int, filters: ItemFilters | None = None) -> int:
    """How many of the project's current items match the filters. Read-only."""
    return items.count_items(session=session, spec=(filters or ItemFilters()).spec(project_id))


@dataclass(frozen=True)
class ItemPage:
    """One page of a filtered item list: its rows, how many items match, the page shown and the pages."""

    rows: list[ItemRow]
    total: int
    page: int
    pages: int


def _row(row: items.ItemListRow) -> ItemRow:
    return ItemRow(
        item_id=row.item_id,
        external_id=row.external_id,
        kind=row.kind,
        status=row.status,
        version=row.version,
        specialties=", ".join(row.specialties),
        dimension=row.dimension or "",
        tags=", ".join(row.tags),
        flagged=flag_marks(row.flagged_criteria, row.open_duplicates),
        summary=summary_of(row),
    )


def item_listing(
    session: Session,
    *,
    project_id: int,
    filters: ItemFilters | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> ItemPage:
    """One page (1-based; a page past the end shows the last) of the project's current items matching the
    filters, in id order, with the total. Read-only."""
    spec = (filters or ItemFilters()).spec(project_id)
    page = max(page, 1)
    ids, total = items.page_ids(session=session, spec=spec, limit=page_size, offset=(page - 1) * page_size)
    pages = page_count(total, page_size)
    if page > pages:
        page = pages
        ids, total = items.page_ids(session=session, spec=spec, limit=page_size, offset=(page - 1) * page_size)
    rows = [_row(row) for row in items.item_list_rows(session=session, item_ids=ids)]
    return ItemPage(rows=rows, total=total, page=page, pages=pages)


def matching_ids(session: Session, *, project_id: int, filters: ItemFilters | None = None) -> list[int]:
    """The ids of every current item of the project matching the filters, in id order. Read-only."""
    return items.matching_item_ids(session=session, spec=(filters or ItemFilters()).spec(project_id))


def listing_version(session: Session, *, project_id: int) -> tuple[int, int]:
    """A token that changes whenever an item's status, tags, flags or content may have changed (the newest
    audit event and item ids), so a list of matching ids can be kept while it stays the same. Read-only."""
    return items.listing_version(session=session, project_id=project_id)


def listing_of_ids(session: Session, *, ids: Sequence[int], page: int = 1, page_size: int = PAGE_SIZE) -> ItemPage:
    """One page (1-based; a page past the end shows the last) of a list of matching item ids already found.
    Read-only."""
    pages = page_count(len(ids), page_size)
    page = min(max(page, 1), pages)
    shown = list(ids[(page - 1) * page_size : page * page_size])
    rows = [_row(row) for row in items.item_list_rows(session=session, item_ids=shown)]
    return ItemPage(rows=rows, total=len(ids), page=page, pages=pages)


def item_page(
    session: Session,
    *,
    project_id: int,
    kind: str | None = None,
    status: str | None = None,
    specialty: str | None = None,
    dimension: str | None = None,
    text: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    flagged: bool = False,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> tuple[list[ItemRow], int]:
    """One page (1-based) of a project's current items matching the filters, and the total. Read-only."""
    filters = ItemFilters(kind, status, specialty, dimension, text, tuple(tags), flagged)
    spec = filters.spec(project_id)
    ids, total = items.page_ids(session=session, spec=spec, limit=page_size, offset=max(page - 1, 0) * page_size)
    return [_row(row) for row in items.item_list_rows(session=session, item_ids=ids)], total


def project_tags(session: Session, *, project_id: int) -> list[str]:
    """The tags used on the project's current items, sorted. Read-only."""
    return items.project_tags(session=session, project_id=project_id)


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    """Number of pages for a total (at least 1). Read-only."""
    return max(1, -(-total // page_size))


@dataclass
class AnswerView:
    answer_id: int
    label: str  # the model's name, or "Answer 1" when blinded
    text: str
    source: str


@dataclass
class ItemView:
    item_id: int
    project: str
    external_id: str
    kind: str
    status: str
    version: int
    versions: int
    specialties: list[str]
    dimension: str | None
    tags: list[str]
    conversation: list[dict[str, str]]
    question: str | None
    options: dict[str, str]
    answer_key: str | None
    explanation: str | None
    meta_info: str | None
    criteria: list[dict[str, Any]] = field(default_factory=list)
    answers: list[AnswerView] = field(default_factory=list)


def blinded_order(answer_ids: list[int], viewer_id: int) -> list[int]:
    """A per-viewer order of answers, so that a position never stands for a model. Read-only."""
    return sorted(answer_ids, key=lambda answer_id: hashlib.sha256(f"{viewer_id}:{answer_id}".encode()).digest())


def item_view(session: Session, *, item_id: int, blinded: bool, viewer_id: int = 0) -> ItemView | None:
    """Everything shown about one item version; when blinded, model names are hidden and answers are
    in an order of this viewer's own. Read-only."""
    item = items.get_item(session=session, item_id=item_id)
    if item is None or item.id is None:
        return None
    project = projects.get_project(session=session, project_id=item.project_id)
    versions = items.list_item_versions(session=session, project_id=item.project_id, external_id=item.external_id)
    criteria = [
        {
            "#": c.position + 1,
            "points": c.points,
            "criterion": c.text,
            "axis": c.axis or "",
            "must not": c.points < 0,
            "tags": ", ".join(c.tags),
        }
        for c in items.list_criteria(session=session, item_id=item.id)
    ]
    rows = items.list_answers(session=session, item_id=item.id)
    if blinded:
        position = {a: i for i, a in enumerate(blinded_order([a.id or 0 for a, _ in rows], viewer_id))}
        rows.sort(key=lambda row: position[row[0].id or 0])
    answers = [
        AnswerView(
            answer_id=answer.id or 0,
            label=f"Answer {index}" if blinded else model_name,
            text=answer.text,
            source=answer.source,
        )
        for index, (answer, model_name) in enumerate(rows, 1)
    ]
    return ItemView(
        item_id=item.id,
        project=project.name if project else "",
        external_id=item.external_id,
        kind=item.kind,
        status=item.status,
        version=item.version,
        versions=len(versions),
        specialties=list(item.specialties),
        dimension=item.dimension,
        tags=list(item.tags),
        conversation=list(item.conversation),
        question=item.question,
        options=dict(item.options),
        answer_key=item.answer_key,
        explanation=item.explanation,
        meta_info=item.meta_info,
        criteria=criteria,
        answers=answers,
    )


def list_projects(session: Session) -> list[Any]:
    """Open projects by name, with their settings. Read-only."""
    return list(projects.list_projects(session=session))


def list_specialties(session: Session) -> list[str]:
    """The specialty taxonomy, in its order. Read-only."""
    return users.list_specialties(session=session)

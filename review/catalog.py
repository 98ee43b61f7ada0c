"""Use cases behind the items screen: filtered pages of items and one item's full view."""

from __future__ import annotations

import hashlib
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
    summary: str


def summary_of(item: Any, width: int = 140) -> str:
    """A one-line preview: the MCQ stem or the last user turn. Read-only."""
    if item.kind == "mcq":
        text = item.question or ""
    else:
        users_turns = [m["content"] for m in item.conversation if m.get("role") == "user"]
        text = users_turns[-1] if users_turns else ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def item_page(
    session: Session,
    *,
    project_id: int,
    kind: str | None = None,
    status: str | None = None,
    specialty: str | None = None,
    dimension: str | None = None,
    text: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> tuple[list[ItemRow], int]:
    """One page (1-based) of a project's current items matching the filters, and the total."""
    spec = items.ItemFilter(
        project_id=project_id, kind=kind, status=status, specialty=specialty, dimension=dimension, text=text
    )
    rows, total = items.list_items(session=session, spec=spec, limit=page_size, offset=max(page - 1, 0) * page_size)
    return [
        ItemRow(
            item_id=item.id or 0,
            external_id=item.external_id,
            kind=item.kind,
            status=item.status,
            version=item.version,
            specialties=", ".join(item.specialties),
            dimension=item.dimension or "",
            summary=summary_of(item),
        )
        for item in rows
    ], total


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

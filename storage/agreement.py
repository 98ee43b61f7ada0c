"""Repository queries that feed the agreement statistics: a project's labels, column by column, and what
each criterion is (axis, themes, clusters, specialties, item kind)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import case
from sqlalchemy import select as columns_of
from sqlmodel import Session, col, select

from storage.models import Answer, Criterion, CriterionLabel, Item, User

MET, NOT_MET, UNSURE = 1, 0, 2  # label values as codes in LabelColumns.values


@dataclass
class LabelColumns:
    """Labels as parallel integer columns (one entry per label), ready for numpy: answer, criterion and
    rater ids, and the value as a code (MET, NOT_MET, UNSURE)."""

    answer_ids: npt.NDArray[np.int64]
    criterion_ids: npt.NDArray[np.int64]
    rater_ids: npt.NDArray[np.int64]
    values: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.values.size)


def label_columns(
    *,
    session: Session,
    project_id: int,
    rater_kinds: Sequence[str] = ("human", "imported"),
    since: datetime | None = None,
    until: datetime | None = None,
) -> LabelColumns:
    """Every criterion label in the project by raters of the given kinds (physicians in medreview and
    imported raters by default; "judge" for an LLM judge), given from `since` and before `until` when
    set, as columns. Read-only."""
    value = case(
        (col(CriterionLabel.value) == "met", MET), (col(CriterionLabel.value) == "not_met", NOT_MET), else_=UNSURE
    )
    query = (
        select(CriterionLabel.answer_id, CriterionLabel.criterion_id, CriterionLabel.rater_id, value)
        .join(Answer, col(Answer.id) == CriterionLabel.answer_id)
        .join(Item, col(Item.id) == Answer.item_id)
        .join(User, col(User.id) == CriterionLabel.rater_id)
        .where(Item.project_id == project_id, col(User.kind).in_(list(rater_kinds)))
    )
    if since is not None:
        query = query.where(col(CriterionLabel.created_at) >= since)
    if until is not None:
        query = query.where(col(CriterionLabel.created_at) < until)
    table = np.array(driver_rows(session, query), dtype=np.int64).reshape(-1, 4)
    return LabelColumns(table[:, 0], table[:, 1], table[:, 2], table[:, 3])


def driver_rows(session: Session, query: Any) -> list[tuple[Any, ...]]:
    """The rows of a large read fetched by the database driver itself, without SQLAlchemy's result rows
    (a million labels: about 1 s instead of 2 to 4 s). The statement is rendered with its values inline;
    they come from this module (ids, rater kinds, times), never from free text."""
    sql = str(query.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


@dataclass(frozen=True)
class CriterionFacts:
    criterion_id: int
    item_id: int
    external_id: str
    kind: str
    text: str
    axis: str | None
    criterion_tags: list[str]
    item_tags: list[str]
    specialties: list[str]
    item_version: int = 1
    is_current: bool = True


def criterion_facts(*, session: Session, project_id: int) -> list[CriterionFacts]:
    """What each criterion of the project is, for slicing agreement (axis, tags, specialties, item kind).
    Read-only."""
    query = (  # SQLAlchemy's select: more columns than sqlmodel's typed overloads take
        columns_of(
            col(Criterion.id),
            col(Item.id),
            col(Item.external_id),
            col(Item.kind),
            col(Criterion.text),
            col(Criterion.axis),
            col(Criterion.tags),
            col(Item.tags),
            col(Item.specialties),
            col(Item.version),
            col(Item.is_current),
        )
        .join(Item, col(Item.id) == Criterion.item_id)
        .where(col(Item.project_id) == project_id)
    )
    return [
        CriterionFacts(
            int(cid),
            int(iid),
            ext,
            kind,
            text,
            axis,
            list(ctags or []),
            list(itags or []),
            list(spec or []),
            int(version),
            bool(current),
        )
        for cid, iid, ext, kind, text, axis, ctags, itags, spec, version, current in session.execute(query).all()
    ]


def rater_names(*, session: Session, rater_ids: Sequence[int]) -> dict[int, str]:
    """Usernames of the given raters. Read-only."""
    if not rater_ids:
        return {}
    query = select(User.id, User.username).where(col(User.id).in_(list(rater_ids)))
    return {int(i): name for i, name in session.execute(query).all()}

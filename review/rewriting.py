"""Use case: the criteria flagged for rewriting in adjudication, each with the agreement figures of its
labels, so a curator sees how badly it divides the physicians before opening it in the editor.

The figures are those of the Agreement page, computed by review.agreement on the labels of the criterion's
units (answer, criterion) by physicians and imported raters, "unsure" left out: the units labelled at least
twice, percent agreement, Krippendorff's alpha (nominal), Gwet's AC1, and the disputed units (labelled
both met and not met). A statistic that is undefined carries its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlmodel import Session

from review import adjudication, agreement, agreement_report
from review.agreement import LabelSet, Statistic, Undefined


@dataclass(frozen=True)
class CriterionToRewrite:
    """A flagged criterion of a current item, why it was flagged, and the agreement of its labels."""

    criterion_id: int
    item_id: int
    item_external_id: str
    position: int  # 0-based
    text: str
    points: int
    reason: str
    units_labelled: int  # units (answers) with at least one label on this criterion
    units_shared: int  # of those, units with at least two labels
    disputed: int  # units labelled both met and not met
    waiting: int  # units waiting in the disagreement queue
    percent_agreement: Statistic
    krippendorff_alpha: Statistic
    gwet_ac1: Statistic


def figure_text(statistic: Statistic, digits: int = 3) -> str:
    """A statistic as shown: the number, or "undefined (reason)". Pure."""
    if isinstance(statistic, Undefined):
        return f"undefined ({statistic.reason})"
    return f"{float(statistic):.{digits}f}"


def criterion_figures(labels: LabelSet) -> tuple[int, int, Statistic, Statistic, Statistic]:
    """Of one criterion's labels: units with two labels or more, disputed units, percent agreement,
    Krippendorff's alpha (nominal) and Gwet's AC1. Pure."""
    n = np.bincount(labels.unit, minlength=labels.units)
    met = np.bincount(labels.unit[labels.met], minlength=labels.units)
    shared = int((n >= 2).sum())
    disputed = int(((met > 0) & (met < n)).sum())
    return (
        shared,
        disputed,
        agreement.percent_agreement(labels),
        agreement.krippendorff_alpha(labels, level="nominal"),
        agreement.gwet_ac1(labels),
    )


def criteria_to_rewrite(session: Session, *, project_id: int) -> list[CriterionToRewrite]:
    """The flagged criteria of the project's current items, by item and position, with the reason they were
    flagged and the agreement figures of their labels. Read-only."""
    flagged = adjudication.flagged_criteria(session, project_id=project_id)
    if not flagged:
        return []
    labels = agreement_report.load_labels(session, project_id=project_id, with_criteria=False).labels
    unit_criteria = np.asarray(labels.unit_ids, dtype=np.int64) & ((1 << agreement_report.UNIT_SHIFT) - 1)
    rows = []
    for entry in flagged:
        criterion = entry.criterion
        units = np.flatnonzero(unit_criteria == criterion.criterion_id)
        shared, disputed, percent, alpha, ac1 = criterion_figures(labels.select_units(units))
        rows.append(
            CriterionToRewrite(
                criterion_id=criterion.criterion_id,
                item_id=entry.item_id,
                item_external_id=entry.item_external_id,
                position=criterion.position,
                text=criterion.text,
                points=criterion.points,
                reason=entry.reason,
                units_labelled=int(units.size),
                units_shared=shared,
                disputed=disputed,
                waiting=entry.units_waiting,
                percent_agreement=percent,
                krippendorff_alpha=alpha,
                gwet_ac1=ac1,
            )
        )
    return rows

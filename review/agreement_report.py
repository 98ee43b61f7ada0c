"""Use cases: a project's agreement figures, from its stored labels (CLI `stats`, the Agreement page).

Units are (answer, criterion), keyed as one integer (answer id << 32 | criterion id) so a million labels
load and encode quickly. Labels of physicians and imported raters count by default; an LLM judge (rater
kind "judge") is compared in issue 5 the same way. "Unsure" labels are left out (they are neither met
nor not met). Each unit carries what its criterion is (axis, themes, clusters, specialties, item kind),
for slices and filters.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session

from review import agreement
from review.agreement import LabelSet, Statistic, Undefined
from storage import agreement as label_queries
from storage.agreement import CriterionFacts, LabelColumns

RATER_KINDS = ("human", "imported")
UNIT_SHIFT = 32


def unit_key(answer_id: int, criterion_id: int) -> int:
    """The integer key of a unit. Pure."""
    return (answer_id << UNIT_SHIFT) | criterion_id


def unit_of(key: int) -> tuple[int, int]:
    """(answer id, criterion id) of a unit key. Pure."""
    return key >> UNIT_SHIFT, key & ((1 << UNIT_SHIFT) - 1)


def label_set(columns: LabelColumns) -> LabelSet:
    """The labels as a LabelSet keyed by unit key and rater id, "unsure" left out. Pure."""
    keep = columns.values != label_queries.UNSURE
    keys = (columns.answer_ids[keep] << UNIT_SHIFT) | columns.criterion_ids[keep]
    unit_codes, unit_ids = pd.factorize(keys)
    rater_codes, rater_ids = pd.factorize(columns.rater_ids[keep])
    return LabelSet.from_codes(
        unit_codes.astype(np.int64),
        rater_codes.astype(np.int64),
        columns.values[keep] == label_queries.MET,
        unit_ids=np.asarray(unit_ids, dtype=np.int64),
        rater_ids=[int(r) for r in rater_ids],
    )


def criterion_meta(fact: CriterionFacts, project: str) -> dict[str, Any]:
    """What a criterion is, for slicing: project, axis, themes, clusters, criterion, specialties, item
    kind. Pure."""
    tags = [*fact.item_tags, *fact.criterion_tags]
    axis = fact.axis or next((t.split(":", 1)[1] for t in fact.criterion_tags if t.startswith("axis:")), None)
    return {
        "project": project,
        "axis": axis,
        "theme": [t.split(":", 1)[1] for t in tags if t.startswith("theme:")],
        "cluster": [t.split(":", 1)[1] for t in tags if t.startswith("cluster:")],
        "criterion": str(fact.criterion_id),
        "specialty": list(fact.specialties),
        "item_kind": fact.kind,
        "item_version": fact.item_version,
        "current": fact.is_current,
    }


@dataclass(frozen=True)
class Filters:
    """Which labels to count: by when they were given, and by what their criterion is."""

    since: datetime | None = None
    until: datetime | None = None
    specialty: str | None = None
    axis: str | None = None
    theme: str | None = None
    # item versions: None counts every version; "current" only the current version of each item; a number
    # only that version of each item (e.g. 1, to compare a rubric before and after its rewrite)
    item_version: int | str | None = None

    def admits(self, meta: dict[str, Any]) -> bool:
        """True when a criterion with this metadata passes the filters. Pure."""
        return (
            (self.specialty is None or self.specialty in meta["specialty"])
            and (self.axis is None or meta["axis"] == self.axis)
            and (self.theme is None or self.theme in meta["theme"])
            and self._admits_version(meta)
        )

    def _admits_version(self, meta: dict[str, Any]) -> bool:
        if self.item_version is None:
            return True
        if self.item_version == "current":
            return bool(meta.get("current", True))
        return bool(meta.get("item_version", 1) == self.item_version)


@dataclass
class ProjectLabels:
    """A project's labels and, per criterion id, what the criterion is."""

    labels: LabelSet
    criteria: dict[int, dict[str, Any]]
    texts: dict[int, str] = field(default_factory=dict)
    external_ids: dict[int, str] = field(default_factory=dict)

    def unit_meta(self) -> dict[Hashable, dict[str, Any]]:
        """Per unit key, its criterion's metadata (shared dicts). Pure."""
        mask = (1 << UNIT_SHIFT) - 1
        return {int(key): self.criteria[int(key) & mask] for key in self.labels.unit_ids.tolist()}


def load_labels(
    session: Session,
    *,
    project_id: int,
    project_name: str = "",
    filters: Filters | None = None,
    rater_kinds: Sequence[str] = RATER_KINDS,
    with_criteria: bool = True,
) -> ProjectLabels:
    """The project's labels (raters of the given kinds) with each criterion's metadata, filtered. Read-only."""
    filters = filters or Filters()
    columns = label_queries.label_columns(
        session=session, project_id=project_id, rater_kinds=rater_kinds, since=filters.since, until=filters.until
    )
    labels = label_set(columns)
    if not with_criteria:
        return ProjectLabels(labels, {})
    facts = label_queries.criterion_facts(session=session, project_id=project_id)
    criteria = {f.criterion_id: criterion_meta(f, project_name) for f in facts}
    texts = {f.criterion_id: f.text for f in facts}
    external_ids = {f.criterion_id: f.external_id for f in facts}
    if filters.specialty or filters.axis or filters.theme or filters.item_version is not None:
        admitted = np.fromiter((cid for cid, meta in criteria.items() if filters.admits(meta)), dtype=np.int64)
        unit_criteria = labels.unit_ids & ((1 << UNIT_SHIFT) - 1)
        labels = labels.select_units(np.flatnonzero(np.isin(unit_criteria, admitted)))
    return ProjectLabels(labels, criteria, texts, external_ids)


def project_agreement(
    session: Session, *, project_id: int, by: Sequence[str] = ("axis",), filters: Filters | None = None
) -> dict[str, Any]:
    """The `stats --json` agreement figures: `overall` and, for each key in `by`, `by_<key>` (each a
    summary: counts, and every statistic as a value or null with its reason). Read-only."""
    loaded = load_labels(session, project_id=project_id, filters=filters, with_criteria=bool(by))
    report: dict[str, Any] = {"overall": agreement.summary(loaded.labels).as_dict()}
    if by:
        meta = loaded.unit_meta()
        for key in by:
            report[f"by_{key}"] = {
                value: figures.as_dict() for value, figures in agreement.by_slice(loaded.labels, meta, key).items()
            }
    return report


STATISTIC_NAMES = {
    "percent_agreement": "percent agreement",
    "krippendorff_alpha": "Krippendorff's alpha",
    "gwet_ac1": "Gwet's AC1",
    "mean_pairwise_cohen_kappa": "mean pairwise Cohen's kappa",
    "pairwise_balanced_f1": "pairwise balanced F1",
}


def overall_line(overall: dict[str, Any]) -> str:
    """One line of the overall figures for `medreview stats` (undefined ones with their reason). Pure."""
    parts = [f"{overall['units']} units, {overall['raters']} raters, {overall['labels']} labels"]
    for key, name in STATISTIC_NAMES.items():
        figure = overall[key]
        parts.append(
            f"{name} {figure['value']:.3f}" if figure["value"] is not None else f"{name} undefined ({figure['reason']})"
        )
    return "; ".join(parts)


# --- what the Agreement page draws ------------------------------------------------------------------------


def value_of(statistic: Statistic) -> float | None:
    """A statistic's number, or None when it is undefined. Pure."""
    return None if isinstance(statistic, Undefined) else float(statistic)


def reason_of(statistic: Statistic) -> str:
    """Why a statistic is undefined ("" when it is defined). Pure."""
    return statistic.reason if isinstance(statistic, Undefined) else ""


def slice_rows(loaded: ProjectLabels, key: str, *, resamples: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Per slice value of `key` (e.g. axis): units, labels, Krippendorff's alpha and Gwet's AC1 with
    bootstrap 95% intervals (seeded), and the share of met labels. Pure."""
    meta = loaded.unit_meta()
    rows = []
    members: dict[str, list[int]] = {}
    for code, key_value in enumerate(loaded.labels.unit_ids.tolist()):
        value = meta[key_value].get(key)
        for one in [value] if isinstance(value, str) else list(value or []):
            members.setdefault(str(one), []).append(code)
    for value in sorted(members):
        part = loaded.labels.select_units(members[value])
        figures = agreement.summary(part)
        row: dict[str, Any] = {
            key: value,
            "units": figures.units,
            "labels": figures.labels,
            "met share": float(part.met.mean()) if part.labels else None,
        }
        for name, statistic in (
            ("alpha", lambda labels: agreement.krippendorff_alpha(labels, level="nominal")),
            ("AC1", agreement.gwet_ac1),
        ):
            point = statistic(part)
            interval = agreement.bootstrap_interval(part, statistic, resamples=resamples, seed=seed)
            row[name] = value_of(point)
            row[f"{name} low"] = None if isinstance(interval, Undefined) else interval.low
            row[f"{name} high"] = None if isinstance(interval, Undefined) else interval.high
            row[f"{name} note"] = reason_of(point)
        rows.append(row)
    return rows


def pair_kappa_rows(labels: LabelSet, names: dict[int, str]) -> list[dict[str, Any]]:
    """Cohen's kappa of every ordered pair of raters (both directions, for a heatmap). Pure."""
    rows = []
    for (a, b), kappa in agreement.cohen_kappa_by_pair(labels).items():
        for x, y in ((a, b), (b, a)):
            rows.append(
                {
                    "rater": names.get(x, str(x)),
                    "other": names.get(y, str(y)),
                    "kappa": value_of(kappa),
                    "note": reason_of(kappa),
                }
            )
    return rows


def rater_rows(labels: LabelSet, names: dict[int, str]) -> list[dict[str, Any]]:
    """Each rater against the others: labels, percent agreement, agreement with the others' majority,
    mean kappa, pairwise balanced F1. Pure."""
    return [
        {
            "rater": names.get(rater, str(rater)),
            "labels": figures.labels,
            "agreement": value_of(figures.percent_agreement),
            "with majority": value_of(figures.majority_agreement),
            "mean kappa": value_of(figures.mean_cohen_kappa),
            "balanced F1": value_of(figures.balanced_f1),
        }
        for rater, figures in agreement.rater_vs_rest(labels).items()
    ]


def lowest_criteria(loaded: ProjectLabels, *, limit: int = 20, min_units: int = 1) -> list[dict[str, Any]]:
    """The criteria with the lowest percent agreement (ties: more disputed units first), with their
    disputed units (answers where raters differ). Pure."""
    labels = loaded.labels
    if not labels.labels:
        return []
    mask = (1 << UNIT_SHIFT) - 1
    unit_criterion = labels.unit_ids & mask
    n = np.bincount(labels.unit, minlength=labels.units)
    met = np.bincount(labels.unit[labels.met], minlength=labels.units)
    disputed = (met > 0) & (met < n)
    frame = pd.DataFrame({"criterion": unit_criterion, "n": n, "met": met, "disputed": disputed})
    frame = frame[frame["n"] >= 2]
    if frame.empty:
        return []
    frame["pairs"] = frame["n"] * (frame["n"] - 1) // 2
    frame["agreeing"] = (
        frame["met"] * (frame["met"] - 1) // 2 + (frame["n"] - frame["met"]) * (frame["n"] - frame["met"] - 1) // 2
    )
    per = frame.groupby("criterion").agg(
        units=("n", "size"), disputed=("disputed", "sum"), pairs=("pairs", "sum"), agreeing=("agreeing", "sum")
    )
    per = per[per["units"] >= min_units]
    per["agreement"] = per["agreeing"] / per["pairs"]
    per = per.sort_values(["agreement", "disputed"], ascending=[True, False]).head(limit)
    return [
        {
            "criterion_id": int(cid),
            "item": loaded.external_ids.get(int(cid), ""),
            "criterion": loaded.texts.get(int(cid), ""),
            "axis": loaded.criteria.get(int(cid), {}).get("axis") or "",
            "units": int(row.units),
            "disputed": int(row.disputed),
            "agreement": float(row.agreement),
        }
        for cid, row in per.iterrows()
    ]


def disputed_answers(loaded: ProjectLabels, criterion_id: int) -> list[int]:
    """The answers on which raters gave this criterion different labels. Pure."""
    labels = loaded.labels
    mask = (1 << UNIT_SHIFT) - 1
    n = np.bincount(labels.unit, minlength=labels.units)
    met = np.bincount(labels.unit[labels.met], minlength=labels.units)
    keys = labels.unit_ids[((labels.unit_ids & mask) == criterion_id) & (met > 0) & (met < n)]
    return sorted(int(key) >> UNIT_SHIFT for key in keys.tolist())


def rater_names(session: Session, rater_ids: Sequence[int]) -> dict[int, str]:
    """Usernames of raters, for curators' tables. Read-only."""
    return label_queries.rater_names(session=session, rater_ids=list(rater_ids))


@dataclass
class PageFigures:
    """Everything the Agreement page shows, as plain rows (JSON-able, so a page may cache it)."""

    overall: dict[str, Any]
    slices: list[dict[str, Any]]
    pair_kappas: list[dict[str, Any]]
    raters: list[dict[str, Any]]
    lowest: list[dict[str, Any]]
    axis_names: list[str]
    theme_names: list[str]
    resamples: int
    item_versions: list[int] = field(default_factory=list)


SLICES = {"axis": "axis", "theme": "theme", "cluster": "cluster", "specialty": "specialty", "item_kind": "item kind"}


def page_figures(
    session: Session,
    *,
    project_id: int,
    project_name: str = "",
    filters: Filters | None = None,
    slice_key: str = "axis",
    seed: int = 0,
) -> PageFigures:
    """The Agreement page's figures for a project and filters: overall, per slice (axis, theme, cluster,
    specialty or item kind) with bootstrap intervals
    (200 resamples, fewer above 50,000 labels so the page stays quick), pairwise kappa, each rater against
    the rest, the criteria with the lowest agreement. Read-only."""
    everything = load_labels(session, project_id=project_id, project_name=project_name)
    loaded = (
        everything
        if filters is None
        else load_labels(session, project_id=project_id, project_name=project_name, filters=filters)
    )
    names = rater_names(session, [int(r) for r in loaded.labels.rater_ids])
    resamples = 200 if loaded.labels.labels <= 50_000 else 30
    return PageFigures(
        overall=agreement.summary(loaded.labels).as_dict(),
        slices=slice_rows(loaded, slice_key, resamples=resamples, seed=seed),
        pair_kappas=pair_kappa_rows(loaded.labels, names),
        raters=rater_rows(loaded.labels, names),
        lowest=lowest_criteria(loaded),
        axis_names=sorted({m["axis"] for m in everything.criteria.values() if m["axis"]}),
        theme_names=sorted({t for m in everything.criteria.values() for t in m["theme"]}),
        resamples=resamples,
        item_versions=sorted({int(m["item_version"]) for m in everything.criteria.values()}),
    )


def disputes_of(session: Session, *, project_id: int, criterion_id: int, filters: Filters | None = None) -> list[int]:
    """The answers on which raters gave this criterion different labels (under the filters). Read-only."""
    return disputed_answers(load_labels(session, project_id=project_id, filters=filters), criterion_id)

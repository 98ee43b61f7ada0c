"""Agreement: how far physicians' labels agree, overall, per axis, per pair and per rater, and the criteria
with the lowest agreement, each leading to its disagreements."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import choose_project, database_key, page_setup, reading
from review import agreement_report, catalog

OPEN_KEY = "adj_open"  # (project id, answer id): the Adjudicate page opens this answer first
ALL = "All"
SHOWN = {
    "krippendorff_alpha": "Krippendorff's alpha",
    "gwet_ac1": "Gwet's AC1",
    "mean_pairwise_cohen_kappa": "Mean pairwise kappa",
    "pairwise_balanced_f1": "Pairwise balanced F1",
    "percent_agreement": "Percent agreement",
}


@st.cache_data(ttl=60, show_spinner="Computing agreement…")
def figures(
    url: str, project_id: int, project_name: str, filters: agreement_report.Filters, slice_key: str
) -> dict[str, Any]:
    """The page's figures for a project, filters and slice: project figures (no one's own rows), kept 60 s."""
    with reading() as session:
        computed = agreement_report.page_figures(
            session, project_id=project_id, project_name=project_name, filters=filters, slice_key=slice_key
        )
    return computed.__dict__


def chosen(value: str) -> str | None:
    return None if value == ALL else value


def day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


user = page_setup("agreement")
st.title("Agreement")
project_id, _ = choose_project("agr_project")
with reading() as session:
    project_name = next(p.name for p in catalog.list_projects(session) if p.id == project_id)
    specialties = catalog.list_specialties(session)

slice_key = (
    st.segmented_control(
        "Per", list(agreement_report.SLICES), format_func=agreement_report.SLICES.get, default="axis", key="agr_slice"
    )
    or "axis"
)
unfiltered = figures(database_key(), project_id, project_name, agreement_report.Filters(), slice_key)
specialty_col, axis_col, theme_col, version_col, dates_col = st.columns(5)
specialty = specialty_col.selectbox("Specialty", [ALL, *specialties], key="agr_specialty")
axis = axis_col.selectbox("Axis", [ALL, *unfiltered["axis_names"]], key="agr_axis")
theme = theme_col.selectbox("Theme", [ALL, *unfiltered["theme_names"]], key="agr_theme")
version_choices: dict[str, int | str | None] = {"All versions": None, "Current versions": "current"}
if len(unfiltered["item_versions"]) > 1:
    version_choices |= {f"Version {n}": n for n in unfiltered["item_versions"]}
item_version = version_col.selectbox("Item versions", list(version_choices), key="agr_item_version")
days = dates_col.date_input("Labels given between", value=(), key="agr_dates")
first_day, last_day = (tuple(days) + (None, None))[:2] if isinstance(days, tuple | list) else (days, None)
filters = agreement_report.Filters(
    since=day_start(first_day),
    until=day_start(last_day + timedelta(days=1)) if last_day else None,
    specialty=chosen(specialty),
    axis=chosen(axis),
    theme=chosen(theme),
    item_version=version_choices[item_version],
)
shown = (
    unfiltered
    if filters == agreement_report.Filters()
    else figures(database_key(), project_id, project_name, filters, slice_key)
)
overall = shown["overall"]

st.caption(f"{overall['units']} units (answer × criterion), {overall['raters']} raters, {overall['labels']} labels")
if not overall["labels"]:
    st.info("No labels yet for this choice: agreement needs submitted gradings.")
    st.stop()
metric_cols = st.columns(len(SHOWN))
notes = []
for (key, name), area in zip(SHOWN.items(), metric_cols, strict=True):
    figure = overall[key]
    area.metric(name, "—" if figure["value"] is None else f"{figure['value']:.3f}")
    if figure["value"] is None:
        notes.append(f"{name} is undefined: {figure['reason']}.")
for note in notes:
    st.caption(note)

st.subheader(f"Per {agreement_report.SLICES[slice_key]}")
slices = pd.DataFrame(shown["slices"])
if slices.empty:
    st.caption(f"No criterion of these labels names a {agreement_report.SLICES[slice_key]}.")
else:
    long = pd.concat(
        [
            slices[[slice_key, name, f"{name} low", f"{name} high"]]
            .rename(columns={name: "value", f"{name} low": "low", f"{name} high": "high"})
            .assign(statistic=name)
            for name in ("alpha", "AC1")
        ]
    )
    defined = long.dropna(subset=["value"])
    base = alt.Chart(defined).encode(
        y=alt.Y(f"{slice_key}:N", title=None), yOffset="statistic:N", color=alt.Color("statistic:N", title=None)
    )
    chart = base.mark_rule().encode(x=alt.X("low:Q", title="value with 95% bootstrap interval"), x2="high:Q") + (
        base.mark_point(filled=True, size=60).encode(
            x="value:Q", tooltip=[slice_key, "statistic", "value", "low", "high"]
        )
    )
    st.altair_chart(chart, width="stretch")
    st.caption(
        f"Intervals: percentile bootstrap over units, {shown['resamples']} resamples, seed 0. "
        "Where every label agrees, alpha is undefined while AC1 stays meaningful."
    )
    prevalence = (
        alt.Chart(slices)
        .mark_bar()
        .encode(
            x=alt.X("met share:Q", title="share of labels 'met'", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(f"{slice_key}:N", title=None),
            tooltip=[slice_key, "units", "labels", "met share"],
        )
    )
    st.altair_chart(prevalence, width="stretch")
    st.dataframe(slices, hide_index=True, key="agr_slices_table")

st.subheader("Pairs of raters: Cohen's kappa")
pairs = pd.DataFrame(shown["pair_kappas"])
if pairs.empty:
    st.caption("No two raters labelled the same unit.")
else:
    heat = (
        alt.Chart(pairs)
        .mark_rect()
        .encode(
            x=alt.X("other:N", title=None),
            y=alt.Y("rater:N", title=None),
            color=alt.Color("kappa:Q", scale=alt.Scale(domain=[-1, 1], scheme="redblue")),
            tooltip=["rater", "other", "kappa", "note"],
        )
    )
    st.altair_chart(heat, width="stretch")

st.subheader("Each rater against the others")
raters = pd.DataFrame(shown["raters"])
bars = (
    alt.Chart(raters.dropna(subset=["balanced F1"]))
    .mark_bar()
    .encode(
        x=alt.X("balanced F1:Q", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("rater:N", title=None, sort="-x"),
        tooltip=["rater", "labels", "agreement", "with majority", "mean kappa", "balanced F1"],
    )
)
st.altair_chart(bars, width="stretch")
st.dataframe(raters, hide_index=True, key="agr_raters_table")

st.subheader("Criteria with the lowest agreement")
lowest = pd.DataFrame(shown["lowest"])
if lowest.empty:
    st.caption("No criterion has two labels on the same answer yet.")
    st.stop()
st.dataframe(lowest.drop(columns=["criterion_id"]), hide_index=True, key="agr_lowest_table")
labels = {row["criterion_id"]: f"{row['item']} · {row['criterion'][:90]}" for row in shown["lowest"]}
criterion_id = st.selectbox("See the disagreements of", list(labels), format_func=labels.get, key="agr_criterion")
with reading() as session:
    answers = agreement_report.disputes_of(session, project_id=project_id, criterion_id=criterion_id, filters=filters)
if not answers:
    st.caption("Raters agree on every answer for this criterion.")
else:
    st.text(f"Disputed on {len(answers)} answer(s): " + ", ".join(str(a) for a in answers))
    if st.button("Open the first in Adjudicate", key="agr_open"):
        st.session_state[OPEN_KEY] = (project_id, answers[0])
        st.switch_page("pages/adjudicate.py")

"""Leaderboard: each model's HealthBench score with a 95% bootstrap interval, from gold labels or one judge's
labels, overall, by axis and by theme; two models compared on the same items; multiple-choice accuracy;
side-by-side win rates; and the answers behind each score, each one a click away from Adjudicate."""

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import choose_project, database_key, page_setup, reading
from review import judging, scores

OPEN_KEY = "adj_open"  # (project id, answer id): the Adjudicate page opens this answer first
GOLD = "Gold labels"
RESAMPLES = 1000  # bootstrap resamples of each score
PAIRED_RESAMPLES = 10_000  # resamples of the paired bootstrap and of the permutation test beyond 16 items
SEED = 0
ALPHA = 0.05
SLICES = {"axis": "axis", "theme": "theme"}
NO_GOLD = (
    "No answer has a gold label on every criterion of its item yet, so no model has a score from gold. Gold "
    "comes from physicians' gradings: where enough physicians agree on a criterion it becomes gold "
    "automatically, and the curator settles the rest on the Adjudicate page. Labels imported with "
    "`medreview import` count the same way."
)
NO_JUDGE_LABELS = (
    "This judge configuration has not labelled every criterion of any answer in this project. Run it on the "
    "Model runs page, or with `medreview judge run`."
)


# --- figures, kept 60 s per database and choice ------------------------------------------------------------


@st.cache_data(ttl=60, show_spinner="Scoring the models…")
def model_scores(
    url: str, project_id: int, source: str, judge_config_id: int | None, item_version: int | None
) -> list[scores.ModelScore]:
    """Each model's scores in the project from one source of labels (project figures, no one's own rows)."""
    with reading() as session:
        return scores.model_scores(
            session,
            project_id=project_id,
            source=source,
            judge_config_id=judge_config_id,
            resamples=RESAMPLES,
            seed=SEED,
            item_version=item_version,
        )


@st.cache_data(ttl=60, show_spinner="Comparing the two models…")
def paired(
    url: str,
    project_id: int,
    model_a: str,
    model_b: str,
    source: str,
    judge_config_id: int | None,
    item_version: int | None,
) -> scores.PairedComparison:
    """Two models on the items both answered, from one source of labels."""
    with reading() as session:
        return scores.paired_comparison(
            session,
            project_id=project_id,
            model_a=model_a,
            model_b=model_b,
            source=source,
            judge_config_id=judge_config_id,
            resamples=PAIRED_RESAMPLES,
            seed=SEED,
            item_version=item_version,
        )


@st.cache_data(ttl=60, show_spinner=False)
def multiple_choice(url: str, project_id: int) -> tuple[list[scores.McqAccuracy], dict[str, dict[str, Any]]]:
    """Multiple-choice accuracy per model and option order, and each model's original-vs-shuffled gap."""
    with reading() as session:
        rows = scores.mcq_accuracy(session, project_id=project_id)
    return rows, scores.order_bias(rows)


@st.cache_data(ttl=60, show_spinner=False)
def side_by_side(url: str, project_id: int) -> scores.SideBySideSummary:
    """Side-by-side win rates and position bias of the project."""
    with reading() as session:
        return scores.side_by_side(session, project_id=project_id)


@st.cache_data(ttl=60, show_spinner=False)
def answer_trace(
    url: str, project_id: int, model: str, source: str, judge_config_id: int | None, item_version: int | None
) -> list[scores.AnswerTrace]:
    """The model's answers behind its score, each with its item and its own score."""
    with reading() as session:
        return scores.answer_trace(
            session,
            project_id=project_id,
            model=model,
            source=source,
            judge_config_id=judge_config_id,
            item_version=item_version,
        )


# --- how figures read ----------------------------------------------------------------------------------------


def number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def interval(low: float | None, high: float | None, reason: str | None) -> str:
    if low is None or high is None:
        return f"undefined: {reason}" if reason else "undefined"
    return f"{low:.4f} to {high:.4f}"


def score_cells(score: scores.Score) -> dict[str, Any]:
    """A figure's table cells as text: score, interval (or why there is none), answers scored."""
    return {
        "score": number(score.value),
        "95% interval": interval(score.low, score.high, score.reason),
        "answers scored": score.answers,
    }


def leaderboard_table(shown: Sequence[scores.ModelScore]) -> pd.DataFrame:
    """The leaderboard, best first: score, interval, answers scored and unscored, as text."""
    return pd.DataFrame(
        [
            {
                "model": row["model"],
                "score": number(row["score"]),
                "95% interval": interval(row["low"], row["high"], row["note"]),
                "answers scored": row["answers"],
                "unscored": row["unscored"],
            }
            for row in scores.leaderboard_rows(shown)
        ]
    )


def interval_chart(frame: pd.DataFrame, category: str, *, offset: str | None = None) -> alt.LayerChart:
    """Points with their intervals as rules, one row per category (and offset group)."""
    encodings: dict[str, Any] = {"y": alt.Y(f"{category}:N", title=None, sort=None)}
    if offset:
        encodings |= {"yOffset": f"{offset}:N", "color": alt.Color(f"{offset}:N", title=None)}
    base = alt.Chart(frame).encode(**encodings)
    tooltip = [c for c in (category, offset, "score", "low", "high", "answers") if c]
    rules = base.mark_rule().encode(
        x=alt.X("low:Q", title="HealthBench score with 95% bootstrap interval", scale=alt.Scale(domain=[0, 1])),
        x2="high:Q",
    )
    points = base.mark_point(filled=True, size=70).encode(x="score:Q", tooltip=tooltip)
    return rules + points


def defined_points(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows with a score, for a chart (a score without an interval is drawn as a point alone)."""
    kept = [row for row in rows if row["score"] is not None]
    for row in kept:
        row["low"] = row["score"] if row["low"] is None else row["low"]
        row["high"] = row["score"] if row["high"] is None else row["high"]
    return pd.DataFrame(kept)


def chart_rows(shown: Sequence[scores.ModelScore], source: str) -> list[dict[str, Any]]:
    return [
        {
            "model": s.model,
            "source": source,
            "score": s.overall.value,
            "low": s.overall.low,
            "high": s.overall.high,
            "answers": s.overall.answers,
        }
        for s in shown
    ]


def comparison_sentence(result: scores.PairedComparison) -> tuple[str, str]:
    """What the comparison shows, and whether it supports "A beats B", without overclaiming."""
    a, b = result.model_a, result.model_b
    if result.mean_difference is None or result.low is None or result.high is None or result.p_value is None:
        return f"The difference is undefined: {result.reason}.", ""
    facts = (
        f"On the {result.items} items both answered with every criterion labelled, {a} minus {b}: mean difference "
        f"{result.mean_difference:+.4f} (95% paired bootstrap interval {result.low:+.4f} to {result.high:+.4f}, "
        f"{PAIRED_RESAMPLES} resamples over items); two-sided p = {result.p_value:.4f} from a paired permutation "
        f"test ({result.method})."
    )
    excludes_zero = result.low > 0 or result.high < 0
    if result.p_value < ALPHA and excludes_zero:
        winner, loser = (a, b) if result.mean_difference > 0 else (b, a)
        verdict = (
            f"The evidence supports “{winner} beats {loser}” on these items (p < {ALPHA} and the interval "
            "excludes 0); it says nothing about items outside this project."
        )
    else:
        why = []
        if result.p_value >= ALPHA:
            why.append(f"p is not below {ALPHA}")
        if not excludes_zero:
            why.append("the interval includes 0")
        verdict = (
            f"The evidence does not support “{a} beats {b}” nor the reverse ({' and '.join(why)}). "
            "This does not show that they are equally good: more items may tell them apart."
        )
    return facts, verdict


# --- sections ------------------------------------------------------------------------------------------------


def slice_section(shown: Sequence[scores.ModelScore], slice_key: str, key: str) -> None:
    """Each model's score per axis or per theme: a table and a chart."""
    figures = [
        (s.model, name, score)
        for s in shown
        for name, score in (s.by_axis if slice_key == "axis" else s.by_theme).items()
    ]
    if not figures:
        st.caption(f"No scored answer has a criterion or item tagged with a {slice_key}.")
        return
    frame = pd.DataFrame([{"model": model, slice_key: name, **score_cells(score)} for model, name, score in figures])
    points = defined_points(
        [
            {
                "model": model,
                slice_key: name,
                "score": score.value,
                "low": score.low,
                "high": score.high,
                "answers": score.answers,
            }
            for model, name, score in figures
        ]
    )
    if not points.empty:
        st.altair_chart(interval_chart(points, slice_key, offset="model"), width="stretch")
    st.dataframe(frame, hide_index=True, key=key)


def judges_beside_gold(project_id: int, gold: Sequence[scores.ModelScore], judges: dict[str, int]) -> None:
    """Each judge's figures beside gold, so a judge's ranking can be compared with the physicians'."""
    st.subheader("Judges beside gold")
    rows = chart_rows(gold, GOLD)
    ranks = {GOLD: [r["model"] for r in scores.leaderboard_rows(gold) if r["score"] is not None]}
    table = [{"source": GOLD, **row} for row in leaderboard_table(gold).to_dict("records")]
    for label, config_id in judges.items():
        judged = model_scores(database_key(), project_id, "judge", config_id, item_version)
        if not any(s.overall.answers for s in judged):
            continue
        rows += chart_rows(judged, label)
        ranks[label] = [r["model"] for r in scores.leaderboard_rows(judged) if r["score"] is not None]
        table += [{"source": label, **row} for row in leaderboard_table(judged).to_dict("records")]
    if len(ranks) == 1:
        st.caption("No judge has labelled this project's answers yet; its figures would appear here beside gold.")
        return
    points = defined_points(rows)
    if not points.empty:
        st.altair_chart(interval_chart(points, "model", offset="source"), width="stretch")
    st.dataframe(pd.DataFrame(table), hide_index=True, key="lb_judges_table")
    for label, order in ranks.items():
        if label != GOLD:
            same = "the same as" if order == ranks[GOLD] else "different from"
            st.text(f"{label} ranks the models {', '.join(order)}: {same} gold ({', '.join(ranks[GOLD])}).")


def compare_section(project_id: int, models: list[str], source: str, config_id: int | None) -> None:
    st.subheader("Compare two models")
    if len(models) < 2:
        st.caption("Two models with answers are needed for a comparison.")
        return
    a_col, b_col = st.columns(2)
    model_a = a_col.selectbox("Model A", models, index=0, key="lb_model_a")
    model_b = b_col.selectbox("Model B", models, index=1, key="lb_model_b")
    result = paired(database_key(), project_id, model_a, model_b, source, config_id, item_version)
    difference_col, p_col, items_col = st.columns(3)
    difference_col.metric("Difference (A − B)", number(result.mean_difference))
    p_col.metric("p-value", number(result.p_value))
    items_col.metric("Items compared", result.items)
    facts, verdict = comparison_sentence(result)
    st.text(facts)  # model names are imported text
    if verdict:
        st.text(verdict)
    if result.unscored_items:
        st.caption(f"{result.unscored_items} item(s) both answered are left out: an answer lacks labels.")


def mcq_section(project_id: int) -> None:
    st.subheader("Multiple-choice accuracy")
    rows, bias = multiple_choice(database_key(), project_id)
    if not rows:
        st.caption("No model has answered a multiple-choice item with a key yet.")
        return
    frame = pd.DataFrame(
        [
            {
                "model": r.model,
                "option order": r.order,
                "answers": r.answers,
                "correct": r.correct,
                "unreadable": r.unreadable,
                "accuracy": number(r.accuracy),
                "Wilson 95% interval": interval(r.low, r.high, "no answer"),
            }
            for r in rows
        ]
    )
    points = pd.DataFrame(
        [
            {"model": r.model, "order": r.order, "score": r.accuracy, "low": r.low, "high": r.high}
            for r in rows
            if r.accuracy is not None and r.low is not None and r.high is not None
        ]
    )
    if not points.empty:
        base = alt.Chart(points).encode(
            y=alt.Y("model:N", title=None), yOffset="order:N", color=alt.Color("order:N", title=None)
        )
        chart = base.mark_rule().encode(
            x=alt.X("low:Q", title="accuracy with Wilson 95% interval", scale=alt.Scale(domain=[0, 1])), x2="high:Q"
        ) + base.mark_point(filled=True, size=70).encode(
            x="score:Q", tooltip=["model", "order", "score", "low", "high"]
        )
        st.altair_chart(chart, width="stretch")
    st.dataframe(frame, hide_index=True, key="lb_mcq_table")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": model,
                    "original order": number(entry["original"]),
                    "shuffled orders": number(entry["shuffled"]),
                    "original − shuffled": number(entry["difference"]),
                }
                for model, entry in sorted(bias.items())
            ]
        ),
        hide_index=True,
        key="lb_mcq_order_table",
    )
    st.caption("A figure reads undefined when the model has no answer in that order.")


def side_by_side_section(project_id: int) -> None:
    st.subheader("Side by side")
    summary = side_by_side(database_key(), project_id)
    if not summary.win_rates:
        st.caption("No submitted side-by-side comparison has shown two models together yet.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "model A": w.model_a,
                        "model B": w.model_b,
                        "A wins": w.wins,
                        "B wins": w.losses,
                        "ties": w.ties,
                        "A's win rate": number(w.win_rate),
                        "Wilson 95% interval": interval(w.low, w.high, "every comparison was a tie"),
                    }
                    for w in summary.win_rates
                ]
            ),
            hide_index=True,
            key="lb_win_rates_table",
        )
        st.caption("Win rate: A's wins over the comparisons that were not ties.")
    st.write(summary.position_bias.sentence())


def trace_section(project_id: int, shown: Sequence[scores.ModelScore], source: str, config_id: int | None) -> None:
    st.subheader("Answers behind a score")
    model = st.selectbox("Model", [s.model for s in shown], key="lb_trace_model")
    traced = answer_trace(database_key(), project_id, model, source, config_id, item_version)
    if not traced:
        st.caption("This model has no answer to the project's open items.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "answer id": row.answer_id,
                    "item": row.item_external_id,
                    "score": number(row.score),
                    "in the score": "yes" if row.score is not None else "no: some criteria lack labels",
                }
                for row in traced
            ]
        ),
        hide_index=True,
        key="lb_trace_table",
    )
    items = {row.answer_id: row.item_external_id for row in traced}
    answer_id = st.selectbox(
        "Answer", list(items), format_func=lambda a: f"answer {a} · {items[a]}", key="lb_trace_answer"
    )
    if st.button("Open in Adjudicate", key="lb_trace_open"):
        st.session_state[OPEN_KEY] = (project_id, answer_id)
        st.switch_page("pages/adjudicate.py")


# --- the page ------------------------------------------------------------------------------------------------

user = page_setup("leaderboard")
st.title("Leaderboard")
project_id, _ = choose_project("lb_project")
with reading() as session:
    judges = {f"{c.name}@v{c.version}": c.config_id for c in judging.list_judge_configs(session)}
    versions = scores.item_versions(session, project_id=project_id)
source_col, version_col = st.columns([3, 1])
source_name = source_col.selectbox("Scores from", [GOLD, *judges], key="lb_source")
config_id = judges.get(source_name)
source = "gold" if config_id is None else "judge"
version_choices: dict[str, int | None] = {"Current versions": None}
if len(versions) > 1:
    version_choices |= {f"Version {n}": n for n in versions}
item_version = version_choices[version_col.selectbox("Items", list(version_choices), key="lb_item_version")]
try:
    shown = model_scores(database_key(), project_id, source, config_id, item_version)
except scores.ScoreError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("HealthBench score per model")
if not shown:
    st.info("No model has answered this project's open items yet.")
elif not any(s.overall.answers for s in shown):
    st.info(NO_GOLD if source == "gold" else NO_JUDGE_LABELS)
else:
    points = defined_points(chart_rows(shown, source_name))
    if not points.empty:
        st.altair_chart(interval_chart(points, "model"), width="stretch")
    st.dataframe(leaderboard_table(shown), hide_index=True, key="lb_table")
    st.caption(
        f"Score: mean over answers of the points met over the positive points, clipped to [0, 1] as HealthBench "
        f"reports it; 95% percentile bootstrap interval over answers ({RESAMPLES} resamples, seed {SEED}). An "
        "answer counts only when every criterion of its item is labelled."
    )
    slice_key = (
        st.segmented_control("Per", list(SLICES), format_func=SLICES.get, default="axis", key="lb_slice") or "axis"
    )
    st.subheader(f"Per {slice_key}")
    slice_section(shown, slice_key, key="lb_slice_table")
    if source == "gold":
        judges_beside_gold(project_id, shown, judges)
    compare_section(project_id, [s.model for s in shown if s.overall.answers], source, config_id)

mcq_section(project_id)
side_by_side_section(project_id)
if shown:
    trace_section(project_id, shown, source, config_id)

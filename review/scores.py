"""Model scores with confidence intervals, for the leaderboard: HealthBench rubric scores per model (from gold
labels or from one judge configuration's labels), overall, by axis and by theme; two models compared on the
items both answered; side-by-side win rates; multiple-choice accuracy (`mcq_accuracy`, from
`review.generation`, re-exported here).

The HealthBench score follows simple-evals' `healthbench_eval.py` exactly:
- one answer: the points of the criteria met (a negative criterion met adds its negative points) over the
  sum of the positive points of the item's criteria (`calculate_score`). It is not clipped: it can be below
  0 (negative criteria met outweigh the positive ones) and is at most 1 (all positive criteria met, no
  negative one). An item whose criteria have no positive points gives no score, and its answers are left out;
- the reported figure: the mean over answers, then clipped to [0, 1] (`np.clip(np.mean(values), 0, 1)` in
  `_compute_clipped_stats`, applied by `_aggregate_get_clipped_mean`). The clip applies once, to the mean,
  never to each answer; since an answer scores at most 1, only the clip at 0 can ever act;
- by tag (`grade_sample`): an item tag (`theme:*`) gets the answer's overall score; a criterion tag
  (`axis:*`) gets the same formula over the item's criteria with that tag, and no score when those criteria
  have no positive points. Each tag's figure is the mean over the answers with a score for it, clipped.

Intervals are percentile bootstrap intervals over answers, seeded (`numpy.random.default_rng(seed)`); each
resample draws as many answers as there are, with replacement, and its figure is the clipped mean, as
simple-evals' bootstrap does. The interval is the (1 - confidence)/2 and (1 + confidence)/2 percentiles
(numpy's linear method), as `review.agreement.bootstrap_interval`.

Which answers count. Scored items are the project's current open items that are not retired, with their
accepted criteria. From gold labels an answer counts only when every criterion of its item has a current
gold label (met or not met); an answer with some criteria still unsettled is left out entirely (not scored
on the criteria it has: a partial rubric would change the denominator) and listed among the unscored. From
a judge, likewise with that judge configuration's labels. Every figure lists the answer ids behind it.

Two models (`paired_comparison`): on each item, the oldest answer of each model (stored first; the lower
id on a tie) stands for it, whether or not it is scored, so labels never choose which answer counts; the
item is shared when both these answers are scored. The per-item difference is a's score minus b's
(unclipped), its mean comes with a paired bootstrap interval over items and a two-sided p-value from a
paired permutation test: the signs of the differences flipped at random (every one of the 2^n sign
patterns when n <= 16), the share of patterns whose |mean| is at least the observed |mean|.

Side by side (`win_rates`): per pair of models and per submitted comparison that showed both, one outcome:
a win for the model whose answer was preferred, or a tie; a comparison of three or more answers that
preferred a third model's answer says nothing about this pair and is not counted. The win rate is wins
over wins plus losses, ties left out (as the position bias leaves them out), with a Wilson 95% interval.
How often the left column was preferred is `review.comparing.position_bias`, shown beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlmodel import Session

from review.comparing import TIE, PositionBias, column_letters, position_bias
from review.generation import McqAccuracy, mcq_accuracy, order_bias
from review.intervals import wilson_interval
from storage import llm as judge_store
from storage import scores as store

__all__ = [
    "AnswerPoints",
    "CriterionPoints",
    "McqAccuracy",
    "ModelScore",
    "PairedComparison",
    "PairedTest",
    "Score",
    "ScoreError",
    "SideBySideSummary",
    "WinRate",
    "answer_score",
    "bootstrap_means",
    "healthbench_score",
    "leaderboard_rows",
    "mcq_accuracy",
    "model_scores",
    "order_bias",
    "pair_outcomes",
    "paired_comparison",
    "paired_test",
    "position_bias",
    "side_by_side",
    "sign_flip_p_value",
    "tag_figures",
    "tag_scores",
    "win_rates",
]

Source = Literal["gold", "judge"]
SOURCES = ("gold", "judge")
AXIS, THEME = "axis:", "theme:"
EXACT_UP_TO = 16  # items: up to this many, the permutation test enumerates every sign pattern
_BLOCK = 1_000_000  # draws per block of bootstrap resamples (bounded memory)

NO_ANSWERS = "no answer is scored"
ONE_ANSWER = "only one answer is scored, so there is no interval"
FEW_SHARED = "fewer than two items have a scored answer from both models"
SAME_MODEL = "a model is compared with itself"

FloatArray = npt.NDArray[np.float64]


class ScoreError(ValueError):
    """A score that cannot be asked for: an unknown source, a missing or unknown judge configuration, a bad
    number of resamples; the message is meant for the person asking."""


# --- one answer --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionPoints:
    """One criterion of an answer's rubric: its points (negative for something the answer must not do),
    whether it was met, and its tags (axis:*, cluster:*, level:*)."""

    points: int
    met: bool
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnswerPoints:
    """One answer with every criterion of its item labelled, and its item's tags (theme:*)."""

    answer_id: int
    criteria: tuple[CriterionPoints, ...]
    item_tags: tuple[str, ...] = ()

    @property
    def score(self) -> float | None:
        """The answer's HealthBench score (unclipped), None when the rubric has no positive points."""
        return answer_score(self.criteria)


def answer_score(criteria: Iterable[CriterionPoints]) -> float | None:
    """Points of the criteria met over the positive points of all criteria (simple-evals' `calculate_score`);
    None when no criterion has positive points. Pure."""
    listed = list(criteria)
    possible = sum(c.points for c in listed if c.points > 0)
    if possible == 0:
        return None
    return sum(c.points for c in listed if c.met) / possible


def tag_scores(answer: AnswerPoints) -> dict[str, float]:
    """The answer's score per tag, as simple-evals' `grade_sample`: each item tag gets the overall score;
    each criterion tag the score over the criteria with that tag, when they have positive points. Pure."""
    overall = answer.score
    scores: dict[str, float] = {}
    if overall is not None:
        scores.update({tag: overall for tag in answer.item_tags})
    by_tag: dict[str, list[CriterionPoints]] = defaultdict(list)
    for criterion in answer.criteria:
        for tag in dict.fromkeys(criterion.tags):
            by_tag[tag].append(criterion)
    for tag, criteria in by_tag.items():
        score = answer_score(criteria)
        if score is not None:
            scores[tag] = score
    return scores


# --- many answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """A HealthBench figure: the mean over answers clipped to [0, 1] (`value`), the unclipped mean, a
    percentile bootstrap interval, and the answers behind it. `value` is None when no answer is scored, and
    `low` / `high` are None when there is no interval; `reason` then says why."""

    value: float | None
    low: float | None
    high: float | None
    answers: int
    answer_ids: tuple[int, ...]
    mean: float | None
    resamples: int = 0
    reason: str | None = None


def _check(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ScoreError("A bootstrap needs at least one resample.")
    if not 0 < confidence < 1:
        raise ScoreError(f"A confidence level lies between 0 and 1, not {confidence}.")


def bootstrap_means(values: npt.ArrayLike, *, resamples: int, seed: int) -> FloatArray:
    """The means of `resamples` bootstrap resamples of the values, drawn from `numpy.random.default_rng(seed)`
    (in blocks of resamples, the block size fixed by the number of values): the same seed, the same means.
    Pure."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ScoreError("There is nothing to resample.")
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // data.size)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        means[start : start + rows] = data[rng.integers(0, data.size, size=(rows, data.size))].mean(axis=1)
    return means


def _percentiles(values: FloatArray, confidence: float) -> tuple[float, float]:
    low, high = np.percentile(values, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return float(low), float(high)


def _score_of(
    values: Sequence[float], answer_ids: Sequence[int], *, resamples: int, seed: int, confidence: float
) -> Score:
    if not values:
        return Score(None, None, None, 0, (), None, reason=NO_ANSWERS)
    data = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(data))
    value = float(np.clip(mean, 0, 1))
    if data.size == 1:
        return Score(value, None, None, 1, tuple(answer_ids), mean, reason=ONE_ANSWER)
    means = np.clip(bootstrap_means(data, resamples=resamples, seed=seed), 0, 1)
    low, high = _percentiles(means, confidence)
    return Score(value, low, high, int(data.size), tuple(answer_ids), mean, resamples=resamples)


def healthbench_score(
    answer_points: Sequence[AnswerPoints], *, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Score:
    """The HealthBench score of these answers (mean of the answer scores, clipped to [0, 1]) with a seeded
    percentile bootstrap interval over answers; answers whose rubric has no positive points are left out.
    Pure."""
    _check(resamples, confidence)
    values: list[float] = []
    answer_ids: list[int] = []
    for answer in answer_points:
        score = answer.score
        if score is not None:
            values.append(score)
            answer_ids.append(answer.answer_id)
    return _score_of(values, answer_ids, resamples=resamples, seed=seed, confidence=confidence)


def tag_figures(
    answer_points: Sequence[AnswerPoints],
    *,
    prefix: str,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Score]:
    """The HealthBench score per tag starting with `prefix` (e.g. "axis:"), keyed by what follows it, over
    the answers with a score for that tag, each with its interval; by tag name. Pure."""
    _check(resamples, confidence)
    values: dict[str, list[float]] = defaultdict(list)
    answer_ids: dict[str, list[int]] = defaultdict(list)
    for answer in answer_points:
        for tag, score in tag_scores(answer).items():
            if tag.startswith(prefix):
                values[tag[len(prefix) :]].append(score)
                answer_ids[tag[len(prefix) :]].append(answer.answer_id)
    return {
        name: _score_of(values[name], answer_ids[name], resamples=resamples, seed=seed, confidence=confidence)
        for name in sorted(values)
    }


# --- per model, from the database --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelScore:
    """One model's HealthBench score from one source of labels (gold, or a judge configuration named in
    `judge`), overall, by axis and by theme, with the answers left unscored for want of labels."""

    model: str
    source: str
    judge: str | None
    overall: Score
    by_axis: dict[str, Score]
    by_theme: dict[str, Score]
    unscored_answer_ids: tuple[int, ...]

    @property
    def answer_ids(self) -> tuple[int, ...]:
        """The answers behind the overall score."""
        return self.overall.answer_ids


@dataclass(frozen=True)
class _Scored:
    judge: str | None
    answers: list[store.ScoredAnswer]
    points: dict[int, AnswerPoints | None]  # answer id → its labelled rubric, None when labels are missing


def _labels(
    session: Session, project_id: int, source: str, judge_config_id: int | None, item_version: int | None
) -> tuple[str | None, dict[tuple[int, int], bool]]:
    if source not in SOURCES:
        raise ScoreError(f"Scores come from gold labels or a judge's labels, not {source!r}.")
    if source == "gold":
        if judge_config_id is not None:
            raise ScoreError("A judge configuration is chosen only for scores from a judge's labels.")
        return None, store.gold_values(session=session, project_id=project_id, item_version=item_version)
    if judge_config_id is None:
        raise ScoreError("Choose the judge configuration whose labels give the scores.")
    config = judge_store.get_judge_config(session=session, config_id=judge_config_id)
    if config is None or config.rater_id is None:
        raise ScoreError("That judge configuration no longer exists.")
    values = store.rater_values(
        session=session, project_id=project_id, rater_id=config.rater_id, item_version=item_version
    )
    return f"{config.name}@v{config.version}", values


def _scored(
    session: Session, project_id: int, source: str, judge_config_id: int | None, item_version: int | None = None
) -> _Scored:
    judge, labels = _labels(session, project_id, source, judge_config_id, item_version)
    rubrics: dict[int, list[store.RubricCriterion]] = defaultdict(list)
    for criterion in store.rubric_criteria(session=session, project_id=project_id, item_version=item_version):
        rubrics[criterion.item_id].append(criterion)
    answers = store.open_answers(session=session, project_id=project_id, item_version=item_version)
    points: dict[int, AnswerPoints | None] = {}
    for answer in answers:
        rubric = rubrics.get(answer.item_id, [])
        units = [(answer.answer_id, criterion.criterion_id) for criterion in rubric]
        if not rubric or any(unit not in labels for unit in units):
            points[answer.answer_id] = None
            continue
        points[answer.answer_id] = AnswerPoints(
            answer_id=answer.answer_id,
            criteria=tuple(
                CriterionPoints(criterion.points, labels[unit], criterion.tags)
                for criterion, unit in zip(rubric, units, strict=True)
            ),
            item_tags=answer.item_tags,
        )
    return _Scored(judge, answers, points)


def model_scores(
    session: Session,
    *,
    project_id: int,
    source: str = "gold",
    judge_config_id: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    item_version: int | None = None,
) -> list[ModelScore]:
    """Each model's HealthBench score on the project's open items, with bootstrap intervals, overall, by axis
    and by theme, from current gold labels (source "gold") or one judge configuration's labels (source
    "judge" with `judge_config_id`); by model name. The current version of each item counts, or the versions
    numbered `item_version`. Read-only."""
    _check(resamples, confidence)
    scored = _scored(session, project_id, source, judge_config_id, item_version)
    by_model: dict[str, list[store.ScoredAnswer]] = defaultdict(list)
    for answer in scored.answers:
        by_model[answer.model].append(answer)
    rows = []
    for model in sorted(by_model):
        labelled = [p for a in by_model[model] if (p := scored.points[a.answer_id]) is not None]
        rows.append(
            ModelScore(
                model=model,
                source=source,
                judge=scored.judge,
                overall=healthbench_score(labelled, resamples=resamples, seed=seed, confidence=confidence),
                by_axis=tag_figures(labelled, prefix=AXIS, resamples=resamples, seed=seed, confidence=confidence),
                by_theme=tag_figures(labelled, prefix=THEME, resamples=resamples, seed=seed, confidence=confidence),
                unscored_answer_ids=tuple(a.answer_id for a in by_model[model] if scored.points[a.answer_id] is None),
            )
        )
    return rows


@dataclass(frozen=True)
class AnswerTrace:
    """One answer behind a model's score: its item and its own score (None when some criterion lacks a label,
    or its rubric has no positive points)."""

    answer_id: int
    item_id: int
    item_external_id: str
    score: float | None


def answer_trace(
    session: Session,
    *,
    project_id: int,
    model: str,
    source: str = "gold",
    judge_config_id: int | None = None,
    item_version: int | None = None,
) -> list[AnswerTrace]:
    """The model's answers to the project's open items with each answer's own (unclipped) score, by answer id:
    the rows behind its figure in `model_scores`. Read-only."""
    scored = _scored(session, project_id, source, judge_config_id, item_version)
    return [
        AnswerTrace(
            answer.answer_id,
            answer.item_id,
            answer.external_id,
            points.score if (points := scored.points[answer.answer_id]) is not None else None,
        )
        for answer in sorted(scored.answers, key=lambda a: a.answer_id)
        if answer.model == model
    ]


def leaderboard_rows(scores: Sequence[ModelScore]) -> list[dict[str, Any]]:
    """One table row per model: source, score, interval, answers scored and unscored; best score first, then
    by model. Pure."""
    rows = [
        {
            "model": s.model,
            "source": "gold" if s.judge is None else f"judge {s.judge}",
            "score": s.overall.value,
            "low": s.overall.low,
            "high": s.overall.high,
            "answers": s.overall.answers,
            "unscored": len(s.unscored_answer_ids),
            "note": s.overall.reason or "",
        }
        for s in scores
    ]
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["model"]))


# --- two models on the same items --------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """The mean of paired differences with a paired bootstrap interval and a two-sided sign-flip
    permutation p-value; `reason` says why they are missing."""

    mean: float | None
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    reason: str | None = None


def _sign_patterns(count: int) -> npt.NDArray[np.int64]:
    codes = np.arange(2**count, dtype=np.int64)[:, None] >> np.arange(count, dtype=np.int64)
    return np.asarray(1 - 2 * (codes & 1), dtype=np.int64)


def sign_flip_p_value(
    differences: npt.ArrayLike, *, resamples: int = 10_000, seed: int = 0, exact_up_to: int = EXACT_UP_TO
) -> tuple[float, str]:
    """The two-sided p-value of a paired permutation test of mean difference 0, and how it was computed.
    Pure.

    Under the null each difference is as likely negated. Up to `exact_up_to` differences, every one of the
    2^n sign patterns is tried and p is the share whose |mean| reaches the observed |mean|; beyond, `resamples`
    random patterns from `numpy.random.default_rng(seed)` and p = (reaching + 1) / (resamples + 1), the
    observed pattern counted once (as scipy.stats.permutation_test). "Reaching" allows a relative tolerance
    of 100 machine epsilons, so equal means computed in another order still count."""
    data = np.asarray(differences, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ScoreError("A permutation test needs at least one difference.")
    if resamples < 1:
        raise ScoreError("A permutation test needs at least one resample.")
    observed = abs(float(np.mean(data)))
    threshold = observed - 100 * np.finfo(np.float64).eps * observed
    if data.size <= exact_up_to:
        means = np.abs(_sign_patterns(data.size) @ data) / data.size
        return float(np.count_nonzero(means >= threshold) / means.size), f"exact: all {2**data.size} sign patterns"
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // data.size)
    reaching = 0
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        signs = 1 - 2 * rng.integers(0, 2, size=(rows, data.size))
        reaching += int(np.count_nonzero(np.abs(signs @ data) / data.size >= threshold))
    return (reaching + 1) / (resamples + 1), f"{resamples} random sign patterns (seed {seed})"


def paired_test(
    differences: Sequence[float], *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> PairedTest:
    """Mean paired difference, its paired bootstrap percentile interval (resampling pairs) and a sign-flip
    permutation p-value; undefined with fewer than two pairs. Pure."""
    _check(resamples, confidence)
    if len(differences) < 2:
        return PairedTest(None, None, None, None, "", reason=FEW_SHARED)
    data = np.asarray(differences, dtype=np.float64)
    low, high = _percentiles(bootstrap_means(data, resamples=resamples, seed=seed), confidence)
    p_value, method = sign_flip_p_value(data, resamples=resamples, seed=seed)
    return PairedTest(float(np.mean(data)), low, high, p_value, method)


@dataclass(frozen=True)
class PairedComparison:
    """Model a against model b on the items both answered: per shared item the two answers and a's score
    minus b's, the mean difference with its paired interval and p-value, and each model's clipped score on
    those items. `unscored_items`: items both answered where an answer lacks labels."""

    model_a: str
    model_b: str
    source: str
    judge: str | None
    item_ids: tuple[int, ...]
    answer_pairs: tuple[tuple[int, int], ...]
    differences: tuple[float, ...]
    score_a: float | None
    score_b: float | None
    mean_difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    unscored_items: int
    reason: str | None = None

    @property
    def items(self) -> int:
        return len(self.item_ids)


def _first_answers(answers: Sequence[store.ScoredAnswer], model: str) -> dict[int, int]:
    """Item id → the model's oldest answer to it (answers come oldest first within an item)."""
    first: dict[int, int] = {}
    for answer in answers:
        if answer.model == model:
            first.setdefault(answer.item_id, answer.answer_id)
    return first


def paired_comparison(
    session: Session,
    *,
    project_id: int,
    model_a: str,
    model_b: str,
    source: str = "gold",
    judge_config_id: int | None = None,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    item_version: int | None = None,
) -> PairedComparison:
    """Model a against model b on the items both answered (each model's oldest answer per item): the mean
    of a's score minus b's with a paired bootstrap interval and a paired permutation p-value. Read-only."""
    _check(resamples, confidence)
    scored = _scored(session, project_id, source, judge_config_id, item_version)
    first_a, first_b = _first_answers(scored.answers, model_a), _first_answers(scored.answers, model_b)
    both = sorted(set(first_a) & set(first_b)) if model_a != model_b else []
    item_ids: list[int] = []
    pairs: list[tuple[int, int]] = []
    differences: list[float] = []
    scores_a: list[float] = []
    scores_b: list[float] = []
    for item_id in both:
        points_a, points_b = scored.points[first_a[item_id]], scored.points[first_b[item_id]]
        score_a = None if points_a is None else points_a.score
        score_b = None if points_b is None else points_b.score
        if score_a is None or score_b is None:
            continue
        item_ids.append(item_id)
        pairs.append((first_a[item_id], first_b[item_id]))
        scores_a.append(score_a)
        scores_b.append(score_b)
        differences.append(score_a - score_b)
    test = paired_test(differences, resamples=resamples, seed=seed, confidence=confidence)
    return PairedComparison(
        model_a=model_a,
        model_b=model_b,
        source=source,
        judge=scored.judge,
        item_ids=tuple(item_ids),
        answer_pairs=tuple(pairs),
        differences=tuple(differences),
        score_a=float(np.clip(np.mean(scores_a), 0, 1)) if scores_a else None,
        score_b=float(np.clip(np.mean(scores_b), 0, 1)) if scores_b else None,
        mean_difference=test.mean,
        low=test.low,
        high=test.high,
        p_value=test.p_value,
        method=test.method,
        unscored_items=len(both) - len(item_ids),
        reason=SAME_MODEL if model_a == model_b else test.reason,
    )


# --- side by side ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinRate:
    """Model a against model b in submitted side-by-side comparisons that showed both: a's wins, losses and
    ties, a's win rate over the decided ones (ties left out) with its Wilson 95% interval, and the
    comparisons behind it."""

    model_a: str
    model_b: str
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    low: float | None
    high: float | None
    comparison_ids: tuple[int, ...]

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def comparisons(self) -> int:
        return self.wins + self.losses + self.ties


def _preferred_answer(row: store.ComparisonRow) -> int | None:
    if row.preferred_answer_id is not None:
        return row.preferred_answer_id
    letters = column_letters(len(row.answer_ids))
    if row.preference in letters:
        return row.answer_ids[letters.index(row.preference)]
    return None


def pair_outcomes(
    rows: Sequence[store.ComparisonRow], models: Mapping[int, str]
) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """Per pair of models (alphabetical), the outcome of each comparison that showed both as (comparison id,
    "win" / "loss" / "tie" for the first model); a preference for a third model's answer is no outcome.
    Pure."""
    outcomes: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        shown = sorted({models[a] for a in row.answer_ids if a in models})
        preferred = _preferred_answer(row)
        winner = models.get(preferred) if preferred is not None else None
        for i, first in enumerate(shown):
            for second in shown[i + 1 :]:
                if row.preference == TIE:
                    outcomes[(first, second)].append((row.comparison_id, "tie"))
                elif winner in (first, second):
                    outcomes[(first, second)].append((row.comparison_id, "win" if winner == first else "loss"))
    return outcomes


def win_rates(session: Session, *, project_id: int) -> list[WinRate]:
    """Per pair of models shown together in the project's submitted side-by-side comparisons: wins, losses,
    ties and the win rate of the first (alphabetically) with a Wilson interval, ties left out; by pair.
    Read-only."""
    rows = store.submitted_comparisons(session=session, project_id=project_id)
    models = store.answer_models(session=session, answer_ids=[a for row in rows for a in row.answer_ids])
    rates = []
    for (first, second), outcomes in sorted(pair_outcomes(rows, models).items()):
        wins = sum(1 for _, outcome in outcomes if outcome == "win")
        losses = sum(1 for _, outcome in outcomes if outcome == "loss")
        interval = wilson_interval(wins, wins + losses)
        rates.append(
            WinRate(
                model_a=first,
                model_b=second,
                wins=wins,
                losses=losses,
                ties=len(outcomes) - wins - losses,
                win_rate=wins / (wins + losses) if wins + losses else None,
                low=interval[0] if interval else None,
                high=interval[1] if interval else None,
                comparison_ids=tuple(cid for cid, _ in outcomes),
            )
        )
    return rates


@dataclass(frozen=True)
class SideBySideSummary:
    """Win rates per pair of models and the position bias of the same comparisons."""

    win_rates: list[WinRate]
    position_bias: PositionBias


def side_by_side(session: Session, *, project_id: int) -> SideBySideSummary:
    """The project's side-by-side win rates with how often the left column was preferred. Read-only."""
    return SideBySideSummary(
        win_rates=win_rates(session, project_id=project_id),
        position_bias=position_bias(session, project_id=project_id),
    )


def item_versions(session: Session, *, project_id: int) -> list[int]:
    """The version numbers the project's open items have, ascending, for choosing which version to score.
    Read-only."""
    return store.item_versions(session=session, project_id=project_id)

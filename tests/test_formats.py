"""Parsing and validation of item files (HealthBench JSONL, MedQA JSONL, CSV): pure, no database.

The bad-input corpus (BAD_CASES) is built here from valid rows of the shared data and is also used
by test_import.py to check that an import of each bad file writes nothing.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from review.formats import (
    MAX_DEPTH,
    MAX_FIELD_CHARS,
    InvalidInput,
    ParsedItem,
    detect_format,
    medqa_external_id,
    parse_answers,
    parse_items,
    tag_value,
)

HARD_30 = "healthbench/hard_sample_30.jsonl"
CONSENSUS_104 = "healthbench/context_seeking_consensus_hard_104.jsonl"
MEDQA_5 = "medqa/medqa_5options_test.jsonl"
MEDQA_HARD = "medqa/medqa_test_hard.jsonl"


# --- helpers shared with test_import.py -----------------------------------------------------------


def raw_lines(shared_data: Path, name: str) -> list[bytes]:
    """The non-blank lines of a shared JSONL file, as bytes."""
    return [line for line in (shared_data / name).read_bytes().split(b"\n") if line.strip()]


def source_rows(shared_data: Path, name: str) -> list[dict[str, Any]]:
    """The rows of a shared JSONL file, parsed with the standard json module."""
    return [json.loads(line) for line in raw_lines(shared_data, name)]


def jsonl(*lines: bytes) -> bytes:
    """Join lines into a JSONL file ending with a newline."""
    return b"\n".join(lines) + b"\n"


def dumps(row: dict[str, Any]) -> bytes:
    """One JSONL line (ASCII escapes, so a lone surrogate becomes a \\ud800 escape)."""
    return json.dumps(row).encode("ascii")


def build_csv(rows: list[list[str]], *, bom: bool = False, newline: str = "\n") -> bytes:
    """A CSV file from rows of cells, quoted as Python's csv module (and Excel) quotes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode("utf-8") + buffer.getvalue().encode("utf-8")


@dataclass(frozen=True)
class BadCase:
    """A bad input file and the (line, field) of every problem it must report."""

    id: str
    filename: str
    build: Callable[[Path], bytes]
    expected: tuple[tuple[int | None, str | None], ...]
    message: str
    max_bytes: int | None = None
    fmt: str = "auto"


def _with_row(name: str, bad_line: int, change: Callable[[dict[str, Any]], Any], count: int = 4):
    """A builder: the first `count` rows of a shared file, row `bad_line` (1-based) changed."""

    def build(shared_data: Path) -> bytes:
        lines = raw_lines(shared_data, name)[:count]
        row = copy.deepcopy(json.loads(lines[bad_line - 1]))
        changed = change(row)
        lines[bad_line - 1] = changed if isinstance(changed, bytes) else dumps(row)
        return jsonl(*lines)

    return build


def _with_raw(name: str, bad_line: int, change: Callable[[bytes], bytes], count: int = 4):
    """A builder: the first `count` raw lines of a shared file, line `bad_line` changed as bytes."""

    def build(shared_data: Path) -> bytes:
        lines = raw_lines(shared_data, name)[:count]
        lines[bad_line - 1] = change(lines[bad_line - 1])
        return jsonl(*lines)

    return build


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(row: dict[str, Any]) -> None:
        target = row
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    def change(row: dict[str, Any]) -> None:
        del row[key]

    return change


def _append_assistant_turn(row: dict[str, Any]) -> None:
    row["prompt"].append({"role": "assistant", "content": "Here is my answer."})


def _options_as_list(row: dict[str, Any]) -> None:
    row["options"] = list(row["options"].values())


def _insert_into_string(marker: bytes, extra: bytes) -> Callable[[bytes], bytes]:
    """Insert bytes right after the first occurrence of marker (inside a JSON string)."""

    def change(line: bytes) -> bytes:
        at = line.index(marker) + len(marker)
        return line[:at] + extra + line[at:]

    return change


def _add_raw_member(member: bytes, *, first: bool = False) -> Callable[[bytes], bytes]:
    def change(line: bytes) -> bytes:
        stripped = line.rstrip()
        assert stripped.startswith(b"{") and stripped.endswith(b"}")
        if first:
            return b"{" + member + b", " + stripped[1:]
        return stripped[:-1] + b", " + member + b"}"

    return change


def _bom(shared_data: Path) -> bytes:
    return b"\xef\xbb\xbf" + jsonl(*raw_lines(shared_data, HARD_30)[:4])


def _four_rows(shared_data: Path) -> bytes:
    return jsonl(*raw_lines(shared_data, HARD_30)[:4])


HUGE = "x" * (MAX_FIELD_CHARS + 1)
P0 = "rubrics[0].points"  # rubric 0 of hard_30 row 2 has +8 points, rubric 2 has -7

BAD_CASES: list[BadCase] = [
    BadCase(
        "invalid-json-line-4",
        "hb.jsonl",
        _with_raw(HARD_30, 4, lambda line: line[:-25], count=5),
        ((4, None),),
        "invalid JSON",
    ),
    BadCase("bom-jsonl", "hb.jsonl", _bom, ((1, None),), "byte-order mark"),
    BadCase(
        "nul-byte",
        "hb.jsonl",
        _with_raw(HARD_30, 3, _insert_into_string(b'"content": "', b"\x00")),
        ((3, None),),
        "NUL",
    ),
    BadCase(
        "field-over-128k",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 0, "criterion"), HUGE)),
        ((2, "rubrics[0].criterion"),),
        "128 KiB",
    ),
    BadCase(
        "nan", "hb.jsonl", _with_row(HARD_30, 2, _set(("rubrics", 0, "points"), float("nan"))), ((2, P0),), "finite"
    ),
    BadCase(
        "infinity",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 0, "points"), float("inf"))),
        ((2, P0),),
        "finite",
    ),
    BadCase(
        "minus-infinity",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 2, "points"), float("-inf"))),
        ((2, "rubrics[2].points"),),
        "finite",
    ),
    BadCase(
        "duplicate-key",
        "hb.jsonl",
        _with_raw(HARD_30, 3, _add_raw_member(b'"prompt_id": "another-id"', first=True)),
        ((3, "prompt_id"),),
        "appears twice",
    ),
    BadCase(
        "nested-5000-lists",
        "hb.jsonl",
        _with_raw(HARD_30, 2, _add_raw_member(b'"deep": ' + b"[" * 5000 + b"]" * 5000)),
        ((2, None),),
        "nested more than",
    ),
    BadCase(
        "nested-40-lists",
        "hb.jsonl",
        _with_raw(HARD_30, 2, _add_raw_member(b'"deep": ' + b"[" * 40 + b"]" * 40)),
        ((2, "deep" + "[0]" * MAX_DEPTH),),
        "nested more than",
    ),
    BadCase(
        "lone-surrogate",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 0, "criterion"), "fever \ud800 and rash")),
        ((2, "rubrics[0].criterion"),),
        "surrogate",
    ),
    BadCase(
        "points-as-string",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 0, "points"), "8")),
        ((2, P0),),
        "whole number",
    ),
    BadCase(
        "prompt-as-string",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("prompt",), "I have a headache, what should I do?")),
        ((2, "prompt"),),
        "list of chat messages",
    ),
    BadCase(
        "options-as-list",
        "mq.jsonl",
        _with_row(MEDQA_5, 3, _options_as_list),
        ((3, "options"),),
        "keyed by letter",
    ),
    BadCase(
        "missing-prompt-id", "hb.jsonl", _with_row(HARD_30, 2, _delete("prompt_id")), ((2, "prompt_id"),), "missing"
    ),
    BadCase("missing-rubrics", "hb.jsonl", _with_row(HARD_30, 2, _delete("rubrics")), ((2, "rubrics"),), "missing"),
    BadCase("missing-question", "mq.jsonl", _with_row(MEDQA_5, 2, _delete("question")), ((2, "question"),), "missing"),
    BadCase(
        "missing-answer-idx", "mq.jsonl", _with_row(MEDQA_5, 2, _delete("answer_idx")), ((2, "answer_idx"),), "missing"
    ),
    BadCase(
        "points-11",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 0, "points"), 11)),
        ((2, P0),),
        "between -10 and 10",
    ),
    BadCase(
        "points-minus-11",
        "hb.jsonl",
        _with_row(HARD_30, 2, _set(("rubrics", 2, "points"), -11)),
        ((2, "rubrics[2].points"),),
        "between -10 and 10",
    ),
    BadCase("points-0", "hb.jsonl", _with_row(HARD_30, 2, _set(("rubrics", 0, "points"), 0)), ((2, P0),), "is 0"),
    BadCase("empty-rubric", "hb.jsonl", _with_row(HARD_30, 2, _set(("rubrics",), [])), ((2, "rubrics"),), "is empty"),
    BadCase(
        "answer-key-not-an-option",
        "mq.jsonl",
        _with_row(MEDQA_5, 2, _set(("answer_idx",), "F")),
        ((2, "answer_idx"),),
        "not among the options",
    ),
    BadCase(
        "conversation-ends-with-assistant",
        "hb.jsonl",
        _with_row(HARD_30, 2, _append_assistant_turn),
        ((2, "prompt"),),
        "end with a user turn",
    ),
    BadCase(
        "invalid-utf8",
        "hb.jsonl",
        _with_raw(HARD_30, 3, _insert_into_string(b'"content": "', b"\xff\xfe")),
        ((3, None),),
        "not valid UTF-8",
    ),
    BadCase("over-size-limit", "hb.jsonl", _four_rows, ((None, None),), "import limit", max_bytes=10_000),
    BadCase("empty-file", "empty.jsonl", lambda _: b"", ((1, None),), "the file has no rows"),
    BadCase("blank-lines-only", "blank.jsonl", lambda _: b"\n  \n\n", ((1, None),), "no rows", fmt="healthbench"),
]


def check_problems(exc: InvalidInput, case: BadCase) -> None:
    """Assert that an InvalidInput reports exactly the expected problems, each located in its text."""
    found = [(p.line, p.field) for p in exc.problems]
    assert found == list(case.expected), [str(p) for p in exc.problems]
    assert case.message in " ".join(p.message for p in exc.problems)
    for problem, (line, field) in zip(exc.problems, case.expected, strict=True):
        text = str(problem)
        assert text.startswith(case.filename)
        if line is not None:
            assert f"{case.filename}, line {line}" in text
        if field is not None:
            assert f"field {field}:" in text
        assert text in str(exc)


# --- the shared data parses completely ----------------------------------------------------------


def test_hard_30_parses_every_row_and_criterion(shared_data):
    """Test that all 30 HealthBench hard rows parse with 355 criteria, 120 negative and 18 multi-turn intact."""
    rows = source_rows(shared_data, HARD_30)
    items = parse_items((shared_data / HARD_30).read_bytes(), "hard_sample_30.jsonl")
    assert len(items) == 30
    assert sum(len(item.criteria) for item in items) == 355
    assert sum(1 for item in items for c in item.criteria if c.points < 0) == 120
    assert sum(1 for item in items if len(item.conversation) > 1) == 18
    for line, (item, row) in enumerate(zip(items, rows, strict=True), start=1):
        assert item.line == line
        assert item.kind == "open" and item.source_format == "healthbench"
        assert item.external_id == row["prompt_id"]
        assert item.conversation == row["prompt"]
        assert item.tags == row["example_tags"]
        assert [(c.text, c.points, c.tags) for c in item.criteria] == [
            (r["criterion"], r["points"], r["tags"]) for r in row["rubrics"]
        ]
        assert set(item.extra) == {"canary", "ideal_completions_data"}
        assert item.reference_answers == []
        assert len(item.content_hash) == 64


def test_hard_30_cluster_criteria_keep_their_tags(shared_data):
    """Test that the 41 cluster-level criteria of hard_30 keep level, axis and cluster tags and expose the axis."""
    items = parse_items((shared_data / HARD_30).read_bytes(), "hard_sample_30.jsonl")
    criteria = [c for item in items for c in item.criteria]
    cluster = [c for c in criteria if "level:cluster" in c.tags]
    assert len(cluster) == 41
    assert all(tag_value(c.tags, "cluster") for c in cluster)
    assert Counter(tag_value(c.tags, "level") for c in criteria) == {"example": 314, "cluster": 41}
    assert all(c.axis == tag_value(c.tags, "axis") and c.axis for c in criteria)


def test_consensus_104_parses_every_row(shared_data):
    """Test that all 104 consensus rows parse with 208 cluster criteria of +5 points and 53 multi-turn prompts."""
    rows = source_rows(shared_data, CONSENSUS_104)
    items = parse_items((shared_data / CONSENSUS_104).read_bytes(), "consensus.jsonl")
    assert [item.external_id for item in items] == [row["prompt_id"] for row in rows]
    criteria = [c for item in items for c in item.criteria]
    assert len(criteria) == 208
    assert {c.points for c in criteria} == {5}
    assert all("level:cluster" in c.tags and tag_value(c.tags, "cluster") for c in criteria)
    multi = [item for item in items if len(item.conversation) > 1]
    assert len(multi) == 53
    by_id = {row["prompt_id"]: row for row in rows}
    assert all(item.conversation == by_id[item.external_id]["prompt"] for item in items)


def test_reference_answers_are_read_only_when_asked(shared_data):
    """Test that hard_30 yields 80 reference answers (4 per row that has them, 0 for the others) only when asked."""
    data = (shared_data / HARD_30).read_bytes()
    rows = source_rows(shared_data, HARD_30)
    items = parse_items(data, "hard.jsonl", with_reference_answers=True)
    assert sum(len(item.reference_answers) for item in items) == 80
    for item, row in zip(items, rows, strict=True):
        ideal = row.get("ideal_completions_data") or {}
        assert item.reference_answers == (ideal.get("ideal_completions_ref_completions") or [])
    assert Counter(len(item.reference_answers) for item in items) == {4: 20, 0: 10}
    # the answers are not part of the item's content
    plain = parse_items(data, "hard.jsonl")
    assert [i.content_hash for i in items] == [i.content_hash for i in plain]


@pytest.mark.parametrize(("name", "count", "options"), [(MEDQA_5, 1273, 5), (MEDQA_HARD, 100, 4)])
def test_medqa_parses_every_row(shared_data, name, count, options):
    """Test that every MedQA row parses with its options, answer key, meta_info and a stable hashed id."""
    rows = source_rows(shared_data, name)
    items = parse_items((shared_data / name).read_bytes(), Path(name).name)
    assert len(items) == count
    assert len({item.external_id for item in items}) == count
    for item, row in zip(items, rows, strict=True):
        assert item.kind == "mcq" and item.source_format == "medqa"
        assert item.external_id == medqa_external_id(row["question"])
        assert item.external_id.startswith("medqa-")
        assert item.question == row["question"]
        assert item.options == row["options"]
        assert len(item.options) == options
        assert item.answer_key == row["answer_idx"]
        assert item.meta_info == row["meta_info"]
    expected_extra = set() if options == 5 else {"realidx", "metamap_phrases"}
    assert {key for item in items for key in item.extra} == expected_extra


def test_detect_format_tells_the_formats_apart(shared_data):
    """Test that the format is detected from the first row (HealthBench, MedQA) or the .csv name."""
    assert detect_format((shared_data / HARD_30).read_bytes(), "a.jsonl") == "healthbench"
    assert detect_format((shared_data / CONSENSUS_104).read_bytes(), "a.jsonl") == "healthbench"
    assert detect_format((shared_data / MEDQA_5).read_bytes(), "a.jsonl") == "medqa"
    assert detect_format((shared_data / MEDQA_HARD).read_bytes(), "a.jsonl") == "medqa"
    assert detect_format(b"external_id,kind\n", "items.CSV") == "csv"
    with pytest.raises(InvalidInput) as caught:
        detect_format(b'{"foo": 1}\n', "odd.jsonl")
    assert "odd.jsonl, line 1:" in str(caught.value)


# --- the bad-input corpus -----------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_bad_input_is_rejected_with_file_line_and_field(shared_data, case):
    """Test that each bad file raises InvalidInput naming the file, the line and the field of every problem."""
    data = case.build(shared_data)
    kwargs = {} if case.max_bytes is None else {"max_bytes": case.max_bytes}
    with pytest.raises(InvalidInput) as caught:
        parse_items(data, case.filename, case.fmt, **kwargs)
    check_problems(caught.value, case)


def test_bad_cases_differ_from_valid_rows_only_in_the_bad_line(shared_data):
    """Test that the corpus builders start from valid data: the same rows without the change parse cleanly."""
    assert len(parse_items(jsonl(*raw_lines(shared_data, HARD_30)[:5]), "hb.jsonl")) == 5
    assert len(parse_items(jsonl(*raw_lines(shared_data, MEDQA_5)[:4]), "mq.jsonl")) == 4
    assert len(parse_items(_four_rows(shared_data), "hb.jsonl", max_bytes=len(_four_rows(shared_data)))) == 4


def _points_11(row: dict[str, Any]) -> None:
    row["rubrics"][0]["points"] = 11


MULTI_PROBLEM_FILES = {
    "two-field-problems": (_points_11, _delete("prompt_id"), [(2, P0), (5, "prompt_id")]),
    "json-error-and-field-problem": (
        lambda row: b'{"prompt_id": "x", ',
        _delete("rubrics"),
        [(2, None), (5, "rubrics")],
    ),
    "surrogate-and-field-problem": (
        _set(("prompt", 0, "content"), "\udfff"),
        _set(("rubrics", 0, "points"), "5"),
        [(2, "prompt[0].content"), (5, P0)],
    ),
}


@pytest.mark.parametrize("variant", list(MULTI_PROBLEM_FILES))
def test_every_problem_of_a_file_is_reported(shared_data, variant):
    """Test that a file with bad lines 2 and 5 around a valid line 3 reports both lines, not just the first."""
    change_2, change_5, expected = MULTI_PROBLEM_FILES[variant]
    lines = raw_lines(shared_data, HARD_30)[:5]
    for number, change in ((2, change_2), (5, change_5)):
        row = json.loads(lines[number - 1])
        changed = change(row)
        lines[number - 1] = changed if isinstance(changed, bytes) else dumps(row)
    with pytest.raises(InvalidInput) as caught:
        parse_items(jsonl(*lines), "two_bad.jsonl")
    assert [(p.line, p.field) for p in caught.value.problems] == expected
    assert "two_bad.jsonl, line 2" in str(caught.value)
    assert "two_bad.jsonl, line 5" in str(caught.value)
    assert "line 3" not in str(caught.value)


def test_same_id_twice_with_different_content_is_rejected(shared_data):
    """Test that one file holding the same prompt_id twice with different rubrics names both lines."""
    lines = raw_lines(shared_data, HARD_30)[:3]
    row = json.loads(lines[0])
    row["rubrics"] = row["rubrics"][:2]
    with pytest.raises(InvalidInput) as caught:
        parse_items(jsonl(*lines, dumps(row)), "repeat.jsonl")
    [problem] = caught.value.problems
    assert problem.line == 4
    assert "line 1" in problem.message and row["prompt_id"] in problem.message


def test_same_row_twice_is_accepted(shared_data):
    """Test that a row repeated unchanged in one file is not an error (both copies parse to the same item)."""
    lines = raw_lines(shared_data, HARD_30)[:2]
    items = parse_items(jsonl(lines[0], lines[1], lines[0]), "repeat.jsonl")
    assert [item.external_id for item in items] == [items[0].external_id, items[1].external_id, items[0].external_id]
    assert items[0].content_hash == items[2].content_hash


def test_too_many_problems_are_capped_but_counted(shared_data):
    """Test that a file with hundreds of bad rows lists at most 200 problems and says how many are shown."""
    row = json.loads(raw_lines(shared_data, HARD_30)[0])
    row["rubrics"][0]["points"] = 0
    with pytest.raises(InvalidInput) as caught:
        parse_items(jsonl(*[dumps(row)] * 300), "many.jsonl")
    assert len(caught.value.problems) == 200
    assert caught.value.problems[-1].line == 200
    assert "200 problem(s)" in str(caught.value) and "... and 180 more" in str(caught.value)


# --- CSV -------------------------------------------------------------------------------------------

CSV_HEADER = [
    "external_id",
    "kind",
    "prompt",
    "conversation",
    "criterion",
    "points",
    "criterion_tags",
    "question",
    "option_A",
    "option_B",
    "option_C",
    "option_D",
    "answer_key",
    "explanation",
    "meta_info",
    "specialties",
    "dimension",
    "tags",
]
CONVERSATION = [
    {"role": "system", "content": "You are a careful clinician."},
    {"role": "user", "content": "My child has a fever of 39.5 °C, what should I do?"},
    {"role": "assistant", "content": "How old is your child, and how long has the fever lasted?"},
    {"role": "user", "content": "She is 2 months old.\nIt started this morning, and she's sleepy."},
]


def csv_row(**cells: str) -> list[str]:
    return [cells.get(column, "") for column in CSV_HEADER]


def valid_csv_rows() -> list[list[str]]:
    """Two open items (one single-turn, one multi-turn JSON conversation) and one mcq item."""
    return [
        CSV_HEADER,
        csv_row(
            external_id="open-1",
            kind="open",
            prompt="Can I take ibuprofen with lisinopril?",
            criterion="Mentions the risk of kidney injury",
            points="7",
            criterion_tags="axis:accuracy; level:example",
            specialties="Cardiology; Nephrology",
            dimension="safety-ethics",
            tags="theme:hedging",
        ),
        csv_row(external_id="open-1", kind="open", criterion="Advises asking a pharmacist or doctor", points="4"),
        csv_row(
            external_id="open-1",
            kind="open",
            criterion="Says the combination is always safe",
            points="-8",
            criterion_tags="axis:accuracy",
        ),
        csv_row(
            external_id="open-2",
            kind="open",
            conversation=json.dumps(CONVERSATION, ensure_ascii=False),
            criterion="Tells the parent to seek emergency care now, since the infant is under 3 months",
            points="10",
            criterion_tags="level:cluster;cluster:emergency_referrals_emergent;axis:completeness",
            specialties="Pediatrics",
        ),
        csv_row(
            external_id="open-2",
            kind="open",
            conversation=json.dumps(CONVERSATION, ensure_ascii=False),
            criterion='Suggests waiting "a few days" to see if it passes',
            points="-10",
        ),
        csv_row(
            external_id="mcq-1",
            kind="mcq",
            question="Which drug is first-line for anaphylaxis?",
            option_A="Diphenhydramine",
            option_B="Epinephrine",
            option_C="Prednisone",
            option_D="Salbutamol, inhaled",
            answer_key="b",
            explanation="Intramuscular epinephrine.",
            meta_info="step2&3",
            specialties="Emergency Medicine",
            dimension="knowledge",
        ),
    ]


def check_valid_csv_items(items: list[ParsedItem]) -> None:
    """Assert the items parsed from valid_csv_rows()."""
    by_id = {item.external_id: item for item in items}
    assert list(by_id) == ["open-1", "open-2", "mcq-1"]
    first, second, mcq = by_id["open-1"], by_id["open-2"], by_id["mcq-1"]
    assert first.kind == "open" and first.source_format == "csv" and first.line == 2
    assert first.conversation == [{"role": "user", "content": "Can I take ibuprofen with lisinopril?"}]
    assert [(c.text, c.points, c.tags) for c in first.criteria] == [
        ("Mentions the risk of kidney injury", 7, ["axis:accuracy", "level:example"]),
        ("Advises asking a pharmacist or doctor", 4, []),
        ("Says the combination is always safe", -8, ["axis:accuracy"]),
    ]
    assert first.specialties == ["Cardiology", "Nephrology"]
    assert first.dimension == "safety-ethics" and first.tags == ["theme:hedging"]
    assert second.conversation == CONVERSATION
    assert [(c.text, c.points) for c in second.criteria] == [
        ("Tells the parent to seek emergency care now, since the infant is under 3 months", 10),
        ('Suggests waiting "a few days" to see if it passes', -10),
    ]
    assert second.criteria[0].axis == "completeness"
    assert second.specialties == ["Pediatrics"] and second.dimension is None
    assert mcq.kind == "mcq"
    assert mcq.question == "Which drug is first-line for anaphylaxis?"
    assert mcq.options == {"A": "Diphenhydramine", "B": "Epinephrine", "C": "Prednisone", "D": "Salbutamol, inhaled"}
    assert mcq.answer_key == "B"
    assert mcq.explanation == "Intramuscular epinephrine." and mcq.meta_info == "step2&3"
    assert mcq.criteria == [] and mcq.conversation == []


def test_valid_csv_parses_open_and_mcq_items():
    """Test that a CSV with multi-row open items (one a JSON multi-turn conversation) and an mcq item parses fully."""
    items = parse_items(build_csv(valid_csv_rows()), "items.csv")
    check_valid_csv_items(items)


def test_csv_with_excel_bom_and_crlf_is_accepted():
    """Test that a CSV saved by Excel (UTF-8 BOM, CRLF line ends) parses to the same items as a plain one."""
    plain = parse_items(build_csv(valid_csv_rows()), "items.csv")
    excel = parse_items(build_csv(valid_csv_rows(), bom=True, newline="\r\n"), "items.csv")
    check_valid_csv_items(excel)
    assert [i.content_hash for i in excel] == [i.content_hash for i in plain]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["id", "type", "prompt", "criterion", "points"], "external_id, kind"),
        (["external_id", "prompt", "criterion", "points"], "kind"),
        (["kind", "question", "option_A", "option_B", "answer_key"], "external_id"),
    ],
)
def test_csv_missing_required_columns_names_them_on_line_1(header, missing):
    """Test that a CSV header without external_id and/or kind is rejected naming the missing columns on line 1."""
    data = build_csv([header, ["x"] * len(header)])
    with pytest.raises(InvalidInput) as caught:
        parse_items(data, "cols.csv")
    problems = [p for p in caught.value.problems if "missing" in p.message]
    assert [(p.line, p.field) for p in problems] == [(1, missing)]
    assert f"cols.csv, line 1, field {missing}: required column(s) missing" in str(caught.value)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([csv_row(external_id="o", kind="open", prompt="Hi", criterion="Greets", points="11")], [(2, "points")]),
        ([csv_row(external_id="o", kind="open", prompt="Hi", criterion="Greets", points="five")], [(2, "points")]),
        ([csv_row(external_id="o", kind="open", criterion="Greets", points="5")], [(2, "prompt")]),
        (
            [
                csv_row(
                    external_id="o",
                    kind="open",
                    conversation='[{"role": "assistant", "content": "Hi"}]',
                    criterion="x",
                    points="5",
                )
            ],
            [(2, "conversation")],
        ),
        (
            [csv_row(external_id="m", kind="mcq", question="Q?", option_A="a", option_B="b", answer_key="C")],
            [(2, "answer_key")],
        ),
        ([csv_row(external_id="m", kind="maybe")], [(2, "kind")]),
        (
            [
                csv_row(external_id="o", kind="open", prompt="Hi", criterion="Greets", points="5"),
                csv_row(external_id="ok", kind="open", prompt="Hi", criterion="Greets", points="5"),
                csv_row(external_id="o", kind="open", prompt="Hello", criterion="Waves", points="5"),
            ],
            [(4, "prompt")],
        ),
    ],
    ids=[
        "points-11",
        "points-text",
        "no-prompt",
        "conversation-ends-assistant",
        "key-not-option",
        "bad-kind",
        "prompt-differs",
    ],
)
def test_csv_row_problems_name_line_and_column(rows, expected):
    """Test that bad CSV cells are reported with their line and column."""
    with pytest.raises(InvalidInput) as caught:
        parse_items(build_csv([CSV_HEADER, *rows]), "bad.csv")
    assert [(p.line, p.field) for p in caught.value.problems] == expected
    for line, field in expected:
        assert f"bad.csv, line {line}, field {field}:" in str(caught.value)


def test_csv_conversation_with_lone_surrogate_is_invalid_input():
    """Test that a CSV conversation cell with a \\ud800 escape is reported as InvalidInput, not a crash."""
    conversation = '[{"role": "user", "content": "pain \\ud800 here"}]'
    data = build_csv(
        [CSV_HEADER, csv_row(external_id="o", kind="open", conversation=conversation, criterion="x", points="5")]
    )
    with pytest.raises(InvalidInput) as caught:
        parse_items(data, "surrogate.csv")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "conversation[0].content")]
    assert "surrogate" in str(caught.value)


# --- answers files ------------------------------------------------------------------------------


def test_parse_answers_reads_and_validates_lines():
    """Test that answer lines parse to (line, external id, model, text) and bad lines are named with their field."""
    good = jsonl(
        b'{"external_id": "a", "model": " gpt-x ", "answer": "Take rest."}',
        b"",
        b'{"external_id": 17, "model": "m", "answer": "Drink water."}',
    )
    answers = parse_answers(good, "answers.jsonl")
    assert [(a.line, a.external_id, a.model, a.text) for a in answers] == [
        (1, "a", "gpt-x", "Take rest."),
        (3, "17", "m", "Drink water."),
    ]
    bad = jsonl(
        b'{"external_id": "a", "model": "m", "answer": "ok"}',
        b'{"model": "m", "answer": "no id"}',
        b'{"external_id": "a", "model": "m", "answer": ""}',
        b'{"external_id": "a", "model": "m", "answer": NaN}',
    )
    with pytest.raises(InvalidInput) as caught:
        parse_answers(bad, "answers.jsonl")
    found = sorted((p.line, p.field) for p in caught.value.problems)
    assert found == [(2, "external_id"), (3, "answer"), (4, "answer")]
    assert "answers.jsonl, line 4, field answer: numbers must be finite" in str(caught.value)


def test_values_longer_than_their_columns_are_refused_before_writing(shared_data):
    """Test that over-long ids, meta_info and axis tags are reported by field, not left to the database."""
    hb = source_rows(shared_data, HARD_30)[0]
    hb["prompt_id"] = "p" * 201
    hb["rubrics"][0]["tags"] = ["axis:" + "a" * 61]
    mcq = source_rows(shared_data, MEDQA_HARD)[0]
    mcq["meta_info"] = "m" * 201
    with pytest.raises(InvalidInput) as hb_error:
        parse_items(dumps(hb), "hb.jsonl", "healthbench")
    with pytest.raises(InvalidInput) as mcq_error:
        parse_items(dumps(mcq), "mq.jsonl", "medqa")
    assert [(p.line, p.field) for p in hb_error.value.problems] == [(1, "prompt_id"), (1, "rubrics[0].tags")]
    assert [(p.line, p.field) for p in mcq_error.value.problems] == [(1, "meta_info")]


def test_unreadable_first_line_reports_the_json_error_not_the_format(shared_data):
    """Test that auto-detection on a broken first line reports that line's JSON error."""
    data = b'{"prompt_id": "x", \n' + raw_lines(shared_data, HARD_30)[0]
    with pytest.raises(InvalidInput) as caught:
        parse_items(data, "broken.jsonl")
    assert str(caught.value.problems[0]).startswith("broken.jsonl, line 1: invalid JSON")

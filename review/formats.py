"""Reading and validating item files: HealthBench JSONL, MedQA JSONL and medreview CSV.

Pure: bytes in, parsed items or a list of problems out; no database. Every problem names the
file, the line and the field, and a file with any problem yields no items at all, so the import
that uses this module writes nothing.

CSV header (one row per rubric criterion for `open` items, one row per `mcq` item):

    external_id, kind                  required; kind is `open` or `mcq`
    prompt                             open: the user's message (single turn)
    conversation                       open: instead of prompt, a JSON list of {role, content}
    criterion, points, criterion_tags  open: one criterion per row; tags separated by `;`
    question, option_A .. option_J     mcq: stem and options (at least two)
    answer_key, explanation, meta_info mcq: key letter (must be an option), optional extras
    specialties, tags                  optional, separated by `;`
    dimension                          optional, one of DIMENSIONS

Rows of an `open` item share its external_id; item-level cells may repeat or stay empty after
the first row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_FIELD_CHARS = 128 * 1024
MAX_DEPTH = 32
MAX_PROBLEMS = 200
POINTS_MIN, POINTS_MAX = -10, 10
ROLES = ("system", "developer", "user", "assistant")
DIMENSIONS = ("knowledge", "safety-ethics", "record-understanding", "patient-service", "care")
FORMATS = ("healthbench", "medqa", "csv")
OPTION_LETTER = re.compile(r"^[A-Z]$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located by line and field."""

    filename: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f", line {self.line}"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


class InvalidInput(ValueError):
    """An input file failed validation; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s):\n{shown}{more}")


@dataclass
class ParsedCriterion:
    text: str
    points: int
    tags: list[str]
    axis: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.axis = tag_value(self.tags, "axis")


@dataclass
class ParsedItem:
    """One item as read from a file, validated, with its content hash."""

    line: int
    external_id: str
    kind: str
    source_format: str
    conversation: list[dict[str, str]] = field(default_factory=list)
    criteria: list[ParsedCriterion] = field(default_factory=list)
    question: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    answer_key: str | None = None
    explanation: str | None = None
    meta_info: str | None = None
    specialties: list[str] = field(default_factory=list)
    dimension: str | None = None
    tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    reference_answers: list[str] = field(default_factory=list)
    content_hash: str = ""
    extra_flags: frozenset[str] = frozenset()

    @property
    def id_field(self) -> str:
        """The name of the field that carries the external id in this item's source format."""
        if self.source_format == "healthbench":
            return "prompt_id"
        if self.source_format == "medqa":
            return "id" if "id_from_question" not in self.extra_flags else "question"
        return "external_id"

    def compute_hash(self) -> str:
        """Set and return the sha256 of the item's content (not its status or project)."""
        self.content_hash = item_content_hash(
            kind=self.kind,
            conversation=self.conversation,
            criteria=[(c.text, c.points, c.tags) for c in self.criteria],
            question=self.question,
            options=self.options,
            answer_key=self.answer_key,
            explanation=self.explanation,
            meta_info=self.meta_info,
            specialties=self.specialties,
            dimension=self.dimension,
            tags=self.tags,
            extra=self.extra,
        )
        return self.content_hash


def item_content_hash(
    *,
    kind: str,
    conversation: list[dict[str, str]],
    criteria: Iterable[tuple[str, int, list[str]]],
    question: str | None,
    options: dict[str, str],
    answer_key: str | None,
    explanation: str | None,
    meta_info: str | None,
    specialties: list[str],
    dimension: str | None,
    tags: list[str],
    extra: dict[str, Any],
) -> str:
    """The sha256 of an item's content (criteria as (text, points, tags) in order), the same for an
    imported row and an item written in the editor. Pure."""
    return content_hash(
        {
            "kind": kind,
            "conversation": conversation,
            "criteria": [[text, points, list(tags)] for text, points, tags in criteria],
            "question": question,
            "options": options,
            "answer_key": answer_key,
            "explanation": explanation,
            "meta_info": meta_info,
            "specialties": specialties,
            "dimension": dimension,
            "tags": tags,
            "extra": extra,
        }
    )


def content_hash(value: Any) -> str:
    """Return the sha256 hex digest of a value's canonical JSON. Read-only."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def tag_value(tags: Iterable[str], prefix: str) -> str | None:
    """Return the value of the first `prefix:value` tag, or None. Read-only."""
    for tag in tags:
        if tag.startswith(prefix + ":"):
            return tag.split(":", 1)[1]
    return None


class _Collector:
    """Collects problems for one file, up to MAX_PROBLEMS."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []

    def add(self, line: int | None, fieldname: str | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(self.filename, line, fieldname, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems)


# --- reading JSON Lines safely ---------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # some key repeats: name the first one that does
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON numbers must be finite)")


def check_size(size: int, filename: str, limit: int = MAX_FILE_BYTES) -> None:
    """Raise InvalidInput when a file is larger than the import limit. Read-only."""
    if size > limit:
        raise InvalidInput(
            [
                Problem(
                    filename,
                    None,
                    None,
                    f"file is {_mib(size)} MiB; the import limit is "
                    f"{_mib(limit)} MiB (split the file or raise MEDREVIEW_MAX_IMPORT_MB)",
                )
            ]
        )


def _mib(size: int) -> str:
    return f"{size / 1048576:.3g}"


def decode_text(data: bytes, filename: str, *, allow_bom: bool = False) -> str:
    """Decode UTF-8 bytes, rejecting NUL bytes and invalid UTF-8 with the line named."""
    problems = _Collector(filename)
    if data.startswith(b"\xef\xbb\xbf"):
        if allow_bom:
            data = data[3:]
        else:
            problems.add(
                1,
                None,
                "file starts with a byte-order mark (BOM); save it as UTF-8 without BOM",
            )
    if b"\x00" in data:
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if b"\x00" in raw:
                problems.add(number, None, "contains a NUL byte; is this a binary or UTF-16 file?")
    problems.raise_if_any()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            [Problem(filename, line, None, f"not valid UTF-8 (byte {exc.start + 1} of the file)")]
        ) from None


def read_json_lines(data: bytes, filename: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line; raise InvalidInput on any problem.

    Rejects a BOM, NUL bytes, invalid UTF-8, invalid JSON, duplicate keys, NaN and Infinity,
    nesting deeper than MAX_DEPTH, lone surrogates and strings longer than MAX_FIELD_CHARS.
    """
    problems = _Collector(filename)
    rows = _json_rows(data, filename, problems)
    problems.raise_if_any()
    yield from rows


def _json_rows(data: bytes, filename: str, problems: _Collector) -> list[tuple[int, Any]]:
    """Parse each non-blank line, adding what is wrong with it to `problems`; return the sound lines.

    Raises InvalidInput only when the bytes cannot be decoded at all, so a caller can go on to
    check the fields of the sound lines and report every problem of the file at once.
    """
    text = decode_text(data, filename)
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            # NaN and Infinity become floats here so that _check_value reports them with their field
            value = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=float)
        except _DuplicateKey as exc:
            problems.add(number, str(exc), "the key appears twice in one object")
            continue
        except RecursionError:
            problems.add(number, None, f"nested more than {MAX_DEPTH} levels deep")
            continue
        except json.JSONDecodeError as exc:
            problems.add(number, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except ValueError as exc:
            problems.add(number, None, f"invalid JSON: {exc}")
            continue
        sound = len(line) <= MAX_FIELD_CHARS and not ("\\u" in line and _SURROGATE_ESCAPE.search(line))
        if sound and _plainly_sound(value):
            found = []  # what _check_value would say, without walking every string
        else:
            found = list(_check_value(value))
        for path, message in found:
            problems.add(number, path, message)
        if not found:
            rows.append((number, value))
    if not rows and not problems.problems:
        problems.add(1, None, "the file has no rows")
    return rows


# A backslash-u escape of a UTF-16 surrogate (D800-DFFF): the only way a lone surrogate gets into text that
# was decoded from valid UTF-8. Valid pairs and an escaped backslash before "ud800" match too; such
# lines just take the full walk of _check_value.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _plainly_sound(value: Any) -> bool:
    """The fast path of _check_value, for a line of at most MAX_FIELD_CHARS characters (so none of
    its strings is longer) without surrogate escapes (so no string or key holds a lone surrogate).

    True when nothing is nested more than MAX_DEPTH levels deep and every number is finite, i.e.
    when _check_value would find nothing. False means "walk it with _check_value".
    """
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is not dict and type(value) is not list:
        return True
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        container, depth = stack.pop()
        children = container.values() if type(container) is dict else container
        if depth >= MAX_DEPTH and len(children):
            return False
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float and not math.isfinite(child):
                return False
    return True


def _check_value(value: Any) -> Iterator[tuple[str | None, str]]:
    """Walk a parsed JSON value without recursion; yield (path, message) for each problem."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        current, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            yield (path or None, f"nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(current, str):
            if len(current) > MAX_FIELD_CHARS:
                yield (
                    path or None,
                    f"text is {len(current):,} characters; the limit is {MAX_FIELD_CHARS:,} (128 KiB)",
                )
            try:
                current.encode("utf-8")
            except UnicodeEncodeError:
                yield (path or None, "contains a lone surrogate (\\ud800-\\udfff escape)")
        elif isinstance(current, dict):
            for key, child in current.items():
                child_path = f"{path}.{key}" if path else key
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    yield (path or None, "a key contains a lone surrogate")
                stack.append((child, child_path, depth + 1))
        elif isinstance(current, list):
            for index, child in enumerate(current):
                stack.append((child, f"{path}[{index}]", depth + 1))
        elif isinstance(current, float) and not math.isfinite(current):
            yield (path or None, "numbers must be finite")


# --- field checks shared by the formats ------------------------------------------------------


def _require_str(row: dict[str, Any], key: str, line: int, problems: _Collector, *, prefix: str = "") -> str | None:
    value = row.get(key)
    name = prefix + key
    if value is None:
        problems.add(line, name, "is missing")
        return None
    if not isinstance(value, str):
        problems.add(line, name, f"must be text, not {_type_name(value)}")
        return None
    if not value.strip():
        problems.add(line, name, "is empty")
        return None
    return value


def _optional_str(row: dict[str, Any], key: str, line: int, problems: _Collector) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(line, key, f"must be text, not {_type_name(value)}")
        return None
    return value


def _str_list(value: Any, name: str, line: int, problems: _Collector) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        for v in value:  # a loop, not all(...): this runs for every criterion of a big file
            if not isinstance(v, str):
                break
        else:
            return list(value)
    problems.add(line, name, "must be a list of text values")
    return []


def _type_name(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _points(value: Any, name: str, line: int, problems: _Collector) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(line, name, f"must be a whole number, not {_type_name(value)}")
        return None
    if isinstance(value, float):
        if not value.is_integer():
            problems.add(line, name, f"must be a whole number, not {value}")
            return None
        value = int(value)
    if not POINTS_MIN <= value <= POINTS_MAX:
        problems.add(line, name, f"is {value}; points must be between -10 and 10")
        return None
    if value == 0:
        problems.add(line, name, "is 0; a criterion must be worth points (-10..-1 or 1..10)")
        return None
    return int(value)


def _conversation(value: Any, name: str, line: int, problems: _Collector) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        problems.add(line, name, "must be a non-empty list of chat messages {role, content}")
        return []
    messages: list[dict[str, str]] = []
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(message, dict):
            problems.add(line, where, "must be an object with role and content")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problems.add(line, f"{where}.role", f"must be one of {', '.join(ROLES)}")
            continue
        if not isinstance(content, str):
            problems.add(line, f"{where}.content", "must be text")
            continue
        messages.append({"role": role, "content": content})
    if messages and len(messages) == len(value) and messages[-1]["role"] != "user":
        problems.add(line, name, "the conversation must end with a user turn")
    return messages


def _rubric_total(criteria: list[ParsedCriterion], line: int, name: str, problems: _Collector) -> None:
    if criteria and not any(c.points > 0 for c in criteria):
        problems.add(line, name, "no criterion has positive points, so the item cannot be scored")


def _specialties_and_dimension(row: dict[str, Any], line: int, problems: _Collector) -> tuple[list[str], str | None]:
    specialties = _str_list(row.get("specialties"), "specialties", line, problems)
    dimension = _optional_str(row, "dimension", line, problems)
    if dimension is not None and dimension not in DIMENSIONS:
        problems.add(line, "dimension", f"must be one of {', '.join(DIMENSIONS)}")
        dimension = None
    return specialties, dimension


# --- HealthBench ---------------------------------------------------------------------------------

_HEALTHBENCH_MAPPED = {"prompt_id", "prompt", "rubrics", "example_tags", "specialties", "dimension"}


def parse_healthbench_row(
    row: Any, line: int, problems: _Collector, *, with_reference_answers: bool = False
) -> ParsedItem | None:
    """Validate one HealthBench row into a ParsedItem (None when invalid)."""
    if not isinstance(row, dict):
        problems.add(line, None, f"each line must be a JSON object, not {_type_name(row)}")
        return None
    before = len(problems.problems)
    external_id = _require_str(row, "prompt_id", line, problems)
    conversation: list[dict[str, str]] = []
    if "prompt" in row:
        conversation = _conversation(row["prompt"], "prompt", line, problems)
    else:
        problems.add(line, "prompt", "is missing")
    criteria: list[ParsedCriterion] = []
    rubrics = row.get("rubrics")
    if rubrics is None:
        problems.add(line, "rubrics", "is missing")
    elif not isinstance(rubrics, list):
        problems.add(line, "rubrics", f"must be a list of criteria, not {_type_name(rubrics)}")
    elif not rubrics:
        problems.add(line, "rubrics", "is empty; an open item needs at least one criterion")
    else:
        for index, criterion in enumerate(rubrics):
            where = f"rubrics[{index}]"
            if not isinstance(criterion, dict):
                problems.add(line, where, "must be an object with criterion, points and tags")
                continue
            text = _require_str(criterion, "criterion", line, problems, prefix=where + ".")
            if "points" not in criterion:
                problems.add(line, f"{where}.points", "is missing")
                points = None
            else:
                points = _points(criterion["points"], f"{where}.points", line, problems)
            tags = _str_list(criterion.get("tags"), f"{where}.tags", line, problems)
            if text is not None and points is not None:
                criteria.append(ParsedCriterion(text=text, points=points, tags=tags))
        _rubric_total(criteria, line, "rubrics", problems)
    tags = _str_list(row.get("example_tags"), "example_tags", line, problems)
    specialties, dimension = _specialties_and_dimension(row, line, problems)
    extra = {k: v for k, v in row.items() if k not in _HEALTHBENCH_MAPPED}
    references: list[str] = []
    ideal = row.get("ideal_completions_data")
    if ideal is not None:
        if not isinstance(ideal, dict):
            problems.add(line, "ideal_completions_data", "must be an object or null")
        else:
            refs = ideal.get("ideal_completions_ref_completions")
            if refs is not None:
                references = _str_list(refs, "ideal_completions_data.ideal_completions_ref_completions", line, problems)
    if len(problems.problems) > before or external_id is None:
        return None
    item = ParsedItem(
        line=line,
        external_id=external_id,
        kind="open",
        source_format="healthbench",
        conversation=conversation,
        criteria=criteria,
        specialties=specialties,
        dimension=dimension,
        tags=tags,
        extra=extra,
        reference_answers=references if with_reference_answers else [],
    )
    item.compute_hash()
    return item


# --- MedQA ------------------------------------------------------------------------------------------

_MEDQA_MAPPED = {
    "id",
    "question",
    "options",
    "answer_idx",
    "answer",
    "explanation",
    "meta_info",
    "specialties",
    "dimension",
    "tags",
}


def medqa_external_id(question: str) -> str:
    """Return the id given to a MedQA row that has none: a hash of its question. Read-only."""
    return "medqa-" + hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:16]


def parse_medqa_row(row: Any, line: int, problems: _Collector) -> ParsedItem | None:
    """Validate one MedQA row (4 or more options keyed by letter) into a ParsedItem."""
    if not isinstance(row, dict):
        problems.add(line, None, f"each line must be a JSON object, not {_type_name(row)}")
        return None
    before = len(problems.problems)
    question = _require_str(row, "question", line, problems)
    options = row.get("options")
    parsed_options: dict[str, str] = {}
    if options is None:
        problems.add(line, "options", "is missing")
    elif not isinstance(options, dict):
        problems.add(line, "options", f"must be an object keyed by letter, not {_type_name(options)}")
    else:
        for letter, text in options.items():
            if not OPTION_LETTER.match(letter):
                problems.add(line, f"options.{letter}", "option keys must be single letters A-Z")
            elif not isinstance(text, str) or not text.strip():
                problems.add(line, f"options.{letter}", "must be non-empty text")
            else:
                parsed_options[letter] = text
        if len(options) < 2:
            problems.add(line, "options", "needs at least two options")
    key = _require_str(row, "answer_idx", line, problems)
    if key is not None and parsed_options and key not in parsed_options:
        problems.add(
            line,
            "answer_idx",
            f"answer key {key!r} is not among the options ({', '.join(parsed_options)})",
        )
    answer_text = row.get("answer")
    if answer_text is not None:
        if not isinstance(answer_text, str):
            problems.add(line, "answer", f"must be text, not {_type_name(answer_text)}")
        elif key in parsed_options and answer_text.strip() != parsed_options[key].strip():
            problems.add(line, "answer", f"does not match the text of option {key} (the answer key)")
    explanation = _optional_str(row, "explanation", line, problems)
    meta_info = _optional_str(row, "meta_info", line, problems)
    row_id = row.get("id")
    if row_id is not None and (not isinstance(row_id, str | int) or isinstance(row_id, bool)):
        problems.add(line, "id", "must be text or a whole number")
    specialties, dimension = _specialties_and_dimension(row, line, problems)
    tags = _str_list(row.get("tags"), "tags", line, problems)
    if len(problems.problems) > before or question is None or key is None:
        return None
    item = ParsedItem(
        line=line,
        external_id=str(row_id) if row_id is not None else medqa_external_id(question),
        extra_flags=frozenset() if row_id is not None else frozenset({"id_from_question"}),
        kind="mcq",
        source_format="medqa",
        question=question,
        options=parsed_options,
        answer_key=key,
        explanation=explanation,
        meta_info=meta_info,
        specialties=specialties,
        dimension=dimension,
        tags=tags,
        extra={k: v for k, v in row.items() if k not in _MEDQA_MAPPED},
    )
    item.compute_hash()
    return item


# --- CSV ---------------------------------------------------------------------------------------------

CSV_REQUIRED = ("external_id", "kind")
CSV_COLUMNS = (
    "external_id",
    "kind",
    "prompt",
    "conversation",
    "criterion",
    "points",
    "criterion_tags",
    "question",
    "answer_key",
    "explanation",
    "meta_info",
    "specialties",
    "dimension",
    "tags",
)
_OPTION_COLUMN = re.compile(r"^option_([A-Ja-j])$")


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def parse_csv(data: bytes, filename: str) -> list[ParsedItem]:
    """Validate a medreview CSV file into items; raise InvalidInput listing every problem."""
    text = decode_text(data, filename, allow_bom=True)
    problems = _Collector(filename)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise InvalidInput([Problem(filename, 1, None, f"unreadable CSV header: {exc}")]) from None
    header = [h.strip() for h in header]
    reader.fieldnames = header
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS and not _OPTION_COLUMN.match(h)]
    if missing:
        problems.add(1, ", ".join(missing), "required column(s) missing from the header")
    if unknown:
        problems.add(1, ", ".join(unknown), "unknown column(s); see the documented CSV header")
    if len(set(header)) != len(header):
        problems.add(1, None, "a column name appears twice in the header")
    problems.raise_if_any()
    option_columns = sorted((h for h in header if _OPTION_COLUMN.match(h)), key=lambda h: h[-1].upper())

    groups: dict[str, dict[str, Any]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                problems.add(line, None, "has more cells than the header has columns")
                continue
            cells = {k: (v or "") for k, v in row.items()}
            if not any(v.strip() for v in cells.values()):
                continue
            for column, value in cells.items():
                if len(value) > MAX_FIELD_CHARS:
                    problems.add(line, column, f"text is {len(value):,} characters; the limit is 128 KiB")
            external_id = cells.get("external_id", "").strip()
            kind = cells.get("kind", "").strip()
            if not external_id:
                problems.add(line, "external_id", "is empty")
                continue
            if kind not in ("open", "mcq"):
                problems.add(line, "kind", "must be open or mcq")
                continue
            group = groups.setdefault(external_id, {"kind": kind, "line": line, "rows": []})
            if group["kind"] != kind:
                problems.add(line, "kind", f"differs from line {group['line']} for the same item")
                continue
            group["rows"].append((line, cells))
    except csv.Error as exc:
        problems.add(reader.line_num, None, f"unreadable CSV: {exc}")
    if not groups and not problems.problems:
        problems.add(1, None, "the file has no rows")

    items: list[ParsedItem] = []
    for external_id, group in groups.items():
        if group["kind"] == "mcq" and len(group["rows"]) > 1:
            lines = ", ".join(str(line) for line, _ in group["rows"])
            problems.add(group["rows"][1][0], "external_id", f"mcq item repeats on lines {lines}")
            continue
        parse = _csv_open_item if group["kind"] == "open" else _csv_mcq_item
        item = parse(external_id, group["rows"], option_columns, problems)
        if item is not None:
            items.append(item)
    problems.raise_if_any()
    return items


def _csv_item_fields(
    rows: list[tuple[int, dict[str, str]]], problems: _Collector
) -> tuple[list[str], str | None, list[str]]:
    first_line, first = rows[0]
    for line, cells in rows[1:]:
        for column in ("prompt", "conversation", "specialties", "dimension", "tags"):
            value = cells.get(column, "").strip()
            if value and value != first.get(column, "").strip():
                problems.add(line, column, f"differs from line {first_line} for the same item")
    dimension = first.get("dimension", "").strip() or None
    if dimension is not None and dimension not in DIMENSIONS:
        problems.add(first_line, "dimension", f"must be one of {', '.join(DIMENSIONS)}")
    return _split(first.get("specialties", "")), dimension, _split(first.get("tags", ""))


def _csv_open_item(
    external_id: str,
    rows: list[tuple[int, dict[str, str]]],
    option_columns: list[str],
    problems: _Collector,
) -> ParsedItem | None:
    before = len(problems.problems)
    first_line, first = rows[0]
    specialties, dimension, tags = _csv_item_fields(rows, problems)
    prompt, conversation_cell = first.get("prompt", "").strip(), first.get("conversation", "").strip()
    conversation: list[dict[str, str]] = []
    if conversation_cell:
        try:
            value = json.loads(conversation_cell, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            problems.add(first_line, "conversation", f"invalid JSON: {exc}")
        else:
            unsound = list(_check_value(value))  # lone surrogates would crash hashing and storing
            for path, message in unsound:
                problems.add(first_line, "conversation" + (path or ""), message)
            if not unsound:
                conversation = _conversation(value, "conversation", first_line, problems)
    elif prompt:
        conversation = [{"role": "user", "content": first["prompt"]}]
    else:
        problems.add(first_line, "prompt", "an open item needs a prompt or a conversation")
    criteria: list[ParsedCriterion] = []
    for line, cells in rows:
        text, points_cell = cells.get("criterion", "").strip(), cells.get("points", "").strip()
        if not text:
            problems.add(line, "criterion", "is empty")
            continue
        try:
            points_value: Any = int(points_cell)
        except ValueError:
            problems.add(line, "points", f"must be a whole number, not {points_cell!r}")
            continue
        points = _points(points_value, "points", line, problems)
        if points is not None:
            criteria.append(
                ParsedCriterion(text=cells["criterion"], points=points, tags=_split(cells.get("criterion_tags", "")))
            )
    _rubric_total(criteria, first_line, "points", problems)
    if len(problems.problems) > before:
        return None
    item = ParsedItem(
        line=first_line,
        external_id=external_id,
        kind="open",
        source_format="csv",
        conversation=conversation,
        criteria=criteria,
        specialties=specialties,
        dimension=dimension,
        tags=tags,
    )
    item.compute_hash()
    return item


def _csv_mcq_item(
    external_id: str,
    rows: list[tuple[int, dict[str, str]]],
    option_columns: list[str],
    problems: _Collector,
) -> ParsedItem | None:
    before = len(problems.problems)
    line, cells = rows[0]
    specialties, dimension, tags = _csv_item_fields(rows, problems)
    question = cells.get("question", "")
    if not question.strip():
        problems.add(line, "question", "is empty")
    options = {column[-1].upper(): cells[column] for column in option_columns if cells[column].strip()}
    if len(options) < 2:
        problems.add(line, "option_A", "an mcq item needs at least two options")
    key = cells.get("answer_key", "").strip().upper()
    if not key:
        problems.add(line, "answer_key", "is empty")
    elif options and key not in options:
        problems.add(line, "answer_key", f"answer key {key!r} is not among the options ({', '.join(options)})")
    if len(problems.problems) > before:
        return None
    item = ParsedItem(
        line=line,
        external_id=external_id,
        kind="mcq",
        source_format="csv",
        question=question,
        options=options,
        answer_key=key,
        explanation=cells.get("explanation") or None,
        meta_info=cells.get("meta_info") or None,
        specialties=specialties,
        dimension=dimension,
        tags=tags,
    )
    item.compute_hash()
    return item


# --- one entry point -------------------------------------------------------------------------------


def _first_nonblank_line(data: bytes) -> bytes:
    """The first line with something other than whitespace, without splitting the whole file."""
    start = 0
    while start <= len(data):
        end = data.find(b"\n", start)
        if end == -1:
            end = len(data)
        if data[start:end].strip():
            return data[start:end]
        start = end + 1
    return b""


def detect_format(data: bytes, filename: str) -> str:
    """Guess the format from the name and the first row: healthbench, medqa or csv. Read-only."""
    lower = filename.lower()
    if lower.endswith(".csv"):
        return "csv"
    first = _first_nonblank_line(data)
    try:
        row = json.loads(first.decode("utf-8", errors="replace").lstrip("\ufeff"))
    except (ValueError, RecursionError):
        row = None
    if isinstance(row, dict):
        if "rubrics" in row or "prompt" in row:
            return "healthbench"
        if "question" in row or "options" in row:
            return "medqa"
    if row is None:
        list(read_json_lines(data, filename))  # raises with the real problem (BOM, invalid JSON, ...)
    raise InvalidInput(
        [
            Problem(
                filename,
                1,
                None,
                "cannot tell the format: expected HealthBench rows (prompt, rubrics), MedQA rows "
                "(question, options, answer_idx) or a .csv file; pass --format",
            )
        ]
    )


def parse_items(
    data: bytes,
    filename: str,
    fmt: str = "auto",
    *,
    with_reference_answers: bool = False,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[ParsedItem]:
    """Validate a whole file and return its items; raise InvalidInput listing every problem."""
    check_size(len(data), filename, max_bytes)
    if fmt == "auto":
        fmt = detect_format(data, filename)
    if fmt not in FORMATS:
        raise InvalidInput([Problem(filename, None, None, f"unknown format {fmt!r}")])
    if fmt == "csv":
        items = parse_csv(data, filename)
    else:
        problems = _Collector(filename)
        items = []
        for line, row in _json_rows(data, filename, problems):
            if fmt == "healthbench":
                item = parse_healthbench_row(row, line, problems, with_reference_answers=with_reference_answers)
            else:
                item = parse_medqa_row(row, line, problems)
            if item is not None:
                items.append(item)
        problems.raise_if_any()
    _check_lengths(items, filename)
    _check_repeats(items, filename)
    return items


def _check_repeats(items: list[ParsedItem], filename: str) -> None:
    problems = _Collector(filename)
    seen: dict[str, ParsedItem] = {}
    for item in items:
        earlier = seen.get(item.external_id)
        if earlier is None:
            seen[item.external_id] = item
        elif earlier.content_hash != item.content_hash:
            problems.add(
                item.line,
                item.id_field,
                f"item {item.external_id!r} repeats line {earlier.line} with different content",
            )
    problems.raise_if_any()


MAX_ID_CHARS = 200
MAX_META_CHARS = 200
MAX_AXIS_CHARS = 60


def _check_lengths(items: list[ParsedItem], filename: str) -> None:
    """Refuse values longer than their database columns, before anything is written."""
    problems = _Collector(filename)
    for item in items:
        if len(item.external_id) > MAX_ID_CHARS:
            problems.add(item.line, item.id_field, f"ids are at most {MAX_ID_CHARS} characters")
        if item.meta_info is not None and len(item.meta_info) > MAX_META_CHARS:
            problems.add(item.line, "meta_info", f"at most {MAX_META_CHARS} characters")
        for index, criterion in enumerate(item.criteria):
            if criterion.axis is not None and len(criterion.axis) > MAX_AXIS_CHARS:
                problems.add(
                    item.line, f"rubrics[{index}].tags", f"an axis: tag is at most {MAX_AXIS_CHARS} characters"
                )
    problems.raise_if_any()


# --- model answers -----------------------------------------------------------------------------------


@dataclass
class ParsedAnswer:
    line: int
    external_id: str
    model: str
    text: str


def parse_answers(data: bytes, filename: str, *, max_bytes: int = MAX_FILE_BYTES) -> list[ParsedAnswer]:
    """Validate an answers JSONL file ({external_id, model, answer} per line)."""
    check_size(len(data), filename, max_bytes)
    problems = _Collector(filename)
    answers: list[ParsedAnswer] = []
    for line, row in _json_rows(data, filename, problems):
        if not isinstance(row, dict):
            problems.add(line, None, f"each line must be a JSON object, not {_type_name(row)}")
            continue
        before = len(problems.problems)
        external_id = row.get("external_id")
        if isinstance(external_id, int) and not isinstance(external_id, bool):
            external_id = str(external_id)
        if external_id is None:
            problems.add(line, "external_id", "is missing")
        elif not isinstance(external_id, str) or not external_id.strip():
            problems.add(line, "external_id", "must be non-empty text")
        model = _require_str(row, "model", line, problems)
        text = _require_str(row, "answer", line, problems)
        if model is not None and len(model) > 200:
            problems.add(line, "model", "model names are at most 200 characters")
        if len(problems.problems) == before and model and text and isinstance(external_id, str):
            answers.append(ParsedAnswer(line, external_id, model.strip(), text))
    problems.raise_if_any()
    return answers

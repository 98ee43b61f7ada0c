"""Use cases: export a project's data sets for the ML engineer, as JSON Lines, CSV or Parquet.

Kinds:
- `gold`: one row per unit (answer, criterion) of the project's current open items that has a current gold
  label (GOLD_COLUMNS), in JSONL, CSV or Parquet. `item_id` is the item's external id and `item_version` its
  version; `criterion_id` is `<item external id>#<position>` (0 is the first criterion, as in rubrics[0]), so
  it stays the same in every copy of the database and across re-imports; `answer_id` is the answer's id in its
  source (a meta-eval completion_id) or `answer-<medreview id>`. `labels` maps each rater (physicians and
  imported raters; never a judge) to met / not_met / unsure, and `comments` maps a rater to their comment on
  the criterion where they left one. Raters are pseudonymized by default: "rater-1", "rater-2"... numbered
  per project in the order of their account ids, so a rater keeps their pseudonym in every export of the
  project (a rater who grades for the first time later gets the next free number unless an older account
  starts grading, which renumbers those after it).
- `healthbench`: the project's current open items (all statuses but retired, only criteria in the rubric)
  in HealthBench's own JSONL: prompt_id, prompt, rubrics [{criterion, points, tags}], example_tags,
  specialties and dimension where set, then every other field the source row carried (ideal_completions_data,
  canary...), as imported. Importing the export into a new project and exporting again gives the same bytes.
  An item without criteria is left out (HealthBench rows need a rubric); a criterion imported from meta-eval
  rows without points keeps its 0 points, which a HealthBench import refuses.
- `meta-eval`: HealthBench meta-eval rows (META_EVAL_COLUMNS), one per unit that has at least one met / not met
  label of a physician or imported rater: binary_labels and anonymized_physician_ids pair up, in the order of
  the raters' account ids. An imported rater `healthbench:<id>` is given back as `<id>`; every other rater by
  their pseudonym. The category is the one the meta-eval import kept as the criterion's last tag, else the
  criterion's `cluster:` tag, else null.

Rows come in a stable order: item external id, item version, criterion position, answer id; nothing in a row
depends on the time, so the same database gives byte-identical files. Rows are written as they come, so memory
stays flat as the project grows. The gold export merges three streamed reads in that order (storage.exports): the
gold units with their criteria and their counted labels (one row each, the labels as one text), the answers with
their items (each item's answers held while its units pass, its conversation parsed once), and the labels that
carry a comment (a comment on a unit without gold is passed over). Each distinct set of labels is turned into its
JSON once. A JSON line is joined from pieces serialised once each (per item and answer, per criterion, per set
of labels, per set of gold columns), byte for byte what serialising the whole row gives; Parquet gets tags,
conversation, labels and comments as ready-made JSON. The other kinds read page by page (ITEMS_PAGE items, their
units UNITS_CHUNK at a time).
CSV cells of text that starts with = + - @, a tab or a carriage return get a leading "'" so a spreadsheet never
runs them as a formula (OWASP CSV injection); lists and objects are written as JSON text in CSV and Parquet.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import orjson
from sqlmodel import Session

from review.importing import _without_cyclic_gc
from review.label_formats import META_FORMAT, META_RATER_PREFIX
from storage import exports, projects

FORMATS = ("jsonl", "csv", "parquet")
KINDS = ("gold", "healthbench", "meta-eval")
JSONL_ONLY = ("healthbench", "meta-eval")
MEDIA_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

GOLD_COLUMNS = (
    "item_id",
    "item_version",
    "criterion_id",
    "criterion",
    "points",
    "tags",
    "axis",
    "conversation",
    "answer_id",
    "answer",
    "model",
    "labels",
    "comments",
    "gold",
    "method",
    "rationale",
    "disagreement_category",
)
# Parquet column types: string, int, float, bool, or json (a list or object written as JSON text)
GOLD_TYPES = {
    **{column: "string" for column in GOLD_COLUMNS},
    "item_version": "int",
    "points": "int",
    "tags": "json",
    "conversation": "json",
    "labels": "json",
    "comments": "json",
}
HEALTHBENCH_COLUMNS = ("prompt_id", "prompt", "rubrics", "example_tags", "specialties", "dimension")
META_EVAL_COLUMNS = (
    "prompt",
    "completion",
    "rubric",
    "binary_labels",
    "anonymized_physician_ids",
    "category",
    "prompt_id",
    "completion_id",
)
COLUMNS = {"gold": GOLD_COLUMNS, "healthbench": HEALTHBENCH_COLUMNS, "meta-eval": META_EVAL_COLUMNS}

ITEMS_PAGE = 100  # items read per page
UNITS_CHUNK = 2000  # units whose answers and labels are read at a time
ROW_GROUP = 10_000  # Parquet rows per row group
JSONL_BATCH = 1000  # JSON lines joined per write
JSON_CACHE = 10_000  # distinct criterion tag lists kept serialised at a time
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PSEUDONYM = "rater-{n}"


class ExportError(ValueError):
    """An export that cannot be made; the message says what is wrong (unknown project, kind or format...)."""


# --- writing rows -------------------------------------------------------------------------------------------


def write_rows(
    rows: Iterable[dict[str, Any]],
    out: BinaryIO,
    fmt: str,
    *,
    columns: Sequence[str],
    column_types: Mapping[str, str] | None = None,
) -> int:
    """Write rows to a binary stream as they come, in `fmt` (jsonl, csv or parquet); return how many.

    JSONL: one compact UTF-8 JSON object per line ("\\n" ends every line), keys in the order of `columns`,
    then any other key of the row in its own order (keys a row lacks are left out). CSV: a header of `columns`,
    then one record per row (a missing key is an empty cell), lists and objects as JSON text, formula
    triggers neutralised. Parquet: `columns` typed by `column_types` (string, int, float, bool, json; a column
    not named there takes the type of its first value, text when it has none), row groups of ROW_GROUP rows.
    Writes to `out` only; never closes it.
    """
    if fmt == "jsonl":
        return _write_jsonl(rows, out, columns)
    if fmt == "csv":
        return _write_csv(rows, out, columns)
    if fmt == "parquet":
        return _write_parquet(rows, out, columns, column_types or {})
    raise ExportError(f"There is no {fmt!r} format; choose one of {', '.join(FORMATS)}.")


def _ordered(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """The row with its keys in the order of `columns`, then its other keys."""
    if tuple(row) == columns:
        return row
    ordered = {column: row[column] for column in columns if column in row}
    ordered.update((key, value) for key, value in row.items() if key not in ordered)
    return ordered


def _write_jsonl(rows: Iterable[dict[str, Any]], out: BinaryIO, columns: Sequence[str]) -> int:
    written = 0
    lines: list[bytes] = []
    order = tuple(columns)
    for row in rows:
        lines.append(orjson.dumps(_ordered(row, order), option=orjson.OPT_APPEND_NEWLINE))
        if len(lines) >= JSONL_BATCH:
            out.write(b"".join(lines))
            written += len(lines)
            lines.clear()
    if lines:
        out.write(b"".join(lines))
        written += len(lines)
    return written


def neutralise(text: str) -> str:
    """Text as a spreadsheet shows it without running it: a leading "'" before = + - @, tab or carriage
    return. Pure."""
    return "'" + text if text.startswith(CSV_TRIGGERS) else text


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | dict):
        return neutralise(_json_text(value))
    return neutralise(str(value))


def _write_csv(rows: Iterable[dict[str, Any]], out: BinaryIO, columns: Sequence[str]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")  # type: ignore[type-var]
    try:
        writer = csv.writer(text)  # RFC 4180: quoted where needed, "\r\n" line ends
        writer.writerow(columns)
        written = 0
        for row in rows:
            writer.writerow([_csv_cell(row.get(column)) for column in columns])
            written += 1
        text.flush()
    finally:
        text.detach()  # leave `out` open for the caller
    return written


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "json": pa.string()}


def _type_of(values: Iterable[Any]) -> str:
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, float):
            return "float"
        if isinstance(value, list | dict):
            return "json"
        return "string"
    return "string"


def _write_parquet(
    rows: Iterable[dict[str, Any]], out: BinaryIO, columns: Sequence[str], column_types: Mapping[str, str]
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = _arrow_types()
    unknown = sorted({kind for kind in column_types.values() if kind not in arrow})
    if unknown:
        raise ExportError(f"Unknown Parquet column type {unknown[0]!r}; use one of {', '.join(arrow)}.")
    iterator = iter(rows)
    group = _take(iterator, ROW_GROUP)
    types = {column: column_types.get(column) or _type_of(row.get(column) for row in group) for column in columns}
    schema = pa.schema([(column, arrow[types[column]]) for column in columns])
    json_columns = [column for column in columns if types[column] == "json"]
    writer = pq.ParquetWriter(out, schema)
    written = 0
    try:
        while group:
            data = {column: [row.get(column) for row in group] for column in columns}
            for column in json_columns:
                data[column] = [None if value is None else _json_text(value) for value in data[column]]
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            written += len(group)
            group = _take(iterator, ROW_GROUP)
    finally:
        writer.close()
    return written


def _take(iterator: Iterator[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    taken: list[dict[str, Any]] = []
    for row in iterator:
        taken.append(row)
        if len(taken) >= size:
            break
    return taken


# --- raters -------------------------------------------------------------------------------------------------


def rater_names(session: Session, *, project_id: int, pseudonymize: bool = True) -> dict[int, str]:
    """Map the account id of every physician and imported rater who graded in the project to the name an export
    gives them: "rater-<n>" (numbered in the order of account ids) when pseudonymized, else their username.
    Read-only."""
    raters = exports.project_raters(session=session, project_id=project_id)
    if pseudonymize:
        return {rater.user_id: PSEUDONYM.format(n=n) for n, rater in enumerate(raters, start=1)}
    return {rater.user_id: rater.username for rater in raters}


def _physician_ids(session: Session, project_id: int) -> dict[int, str]:
    """Meta-eval physician ids: a HealthBench physician's own id, else the rater's pseudonym."""
    raters = exports.project_raters(session=session, project_id=project_id)
    names: dict[int, str] = {}
    for n, rater in enumerate(raters, start=1):
        own = rater.kind == "imported" and rater.username.startswith(META_RATER_PREFIX)
        names[rater.user_id] = rater.username[len(META_RATER_PREFIX) :] if own else PSEUDONYM.format(n=n)
    return names


# --- reading page by page -----------------------------------------------------------------------------------


def _item_pages(
    session: Session, project_id: int, exclude_statuses: Sequence[str] = ()
) -> Iterator[list[exports.ExportItem]]:
    after: tuple[str, int] | None = None
    while True:
        page = exports.open_items_page(
            session=session,
            project_id=project_id,
            after=after,
            limit=ITEMS_PAGE,
            exclude_statuses=exclude_statuses,
        )
        if page:
            yield page
        if len(page) < ITEMS_PAGE:
            return
        after = (page[-1].external_id, page[-1].version)


_Unit = tuple[int, int, int]  # answer id, criterion id, item id


def _unit_chunks(
    session: Session,
    page: list[exports.ExportItem],
    criteria: dict[int, exports.ExportCriterion],
    units: Iterable[_Unit],
) -> Iterator[tuple[list[_Unit], dict[int, exports.ExportAnswer], dict[tuple[int, int], list[exports.UnitLabel]]]]:
    """The page's units in export order, UNITS_CHUNK at a time, with their answers and counted labels."""
    rank = {item.item_id: n for n, item in enumerate(page)}
    ordered = sorted(
        (unit for unit in units if unit[1] in criteria and criteria[unit[1]].item_id == unit[2]),
        key=lambda unit: (rank[unit[2]], criteria[unit[1]].position, unit[1], unit[0]),
    )
    for start in range(0, len(ordered), UNITS_CHUNK):
        chunk = ordered[start : start + UNITS_CHUNK]
        answers = exports.answers_by_id(session=session, answer_ids={unit[0] for unit in chunk})
        labels: dict[tuple[int, int], list[exports.UnitLabel]] = {}
        for label in exports.unit_labels(
            session=session, answer_ids={unit[0] for unit in chunk}, criterion_ids={unit[1] for unit in chunk}
        ):
            labels.setdefault((label.answer_id, label.criterion_id), []).append(label)
        yield chunk, answers, labels


def _page_criteria(session: Session, page: list[exports.ExportItem]) -> dict[int, exports.ExportCriterion]:
    found = exports.item_criteria(session=session, item_ids=[item.item_id for item in page])
    return {criterion.criterion_id: criterion for listed in found.values() for criterion in listed}


def answer_external_id(answer: exports.ExportAnswer) -> str:
    """An answer's id in exports: its id in its source, else "answer-<id>". Pure."""
    return answer.external_id or f"answer-{answer.answer_id}"


# --- gold ---------------------------------------------------------------------------------------------------


def gold_rows(session: Session, *, project_id: int, pseudonymize: bool = True) -> Iterator[dict[str, Any]]:
    """Yield one row (GOLD_COLUMNS) per unit of the project's current open items that has a current gold label,
    in export order. Read-only."""
    for values in _gold_values(session, project_id=project_id, pseudonymize=pseudonymize, json_text=False):
        yield dict(zip(GOLD_COLUMNS, values, strict=True))


_JsonCache = dict[Any, Any]
_EMPTY_OBJECT = b"{}"
LINE_PIECES = 6  # pieces joined into one gold JSON line


def _parsed(text: str | None, empty: Any) -> Any:
    """A JSON column's value from its text (`empty()` for null or an empty value)."""
    return (orjson.loads(text) if text is not None else None) or empty()


def _json_value(text: str | None, cache: _JsonCache, as_json: bool, empty: Any) -> Any:
    """A JSON column's value from its text: with `as_json`, an orjson fragment (its compact JSON, written as is
    into a JSON line), made once per distinct text; else the value itself."""
    if not as_json:
        return _parsed(text, empty)
    found = cache.get(text)
    if found is None:
        if len(cache) >= JSON_CACHE:
            cache.clear()
        found = cache[text] = orjson.Fragment(orjson.dumps(_parsed(text, empty)))
    return found


def _unit_labels(text: str | None, names: Mapping[int, str]) -> dict[str, str]:
    """A unit's labels, rater name -> value in the order of the raters' account ids, from the text the gold read
    gives them as (storage.exports.stream_gold_units: "<rater id>:<value>" joined by ",", in any order)."""
    if not text:
        return {}
    labels = sorted(
        (int(rater), value)
        for rater, value in (label.split(exports.RATER_SEPARATOR, 1) for label in text.split(exports.LABEL_SEPARATOR))
    )
    return {names[rater]: value for rater, value in labels}


class _GoldMerge:
    """What the gold units need from the two other reads, all three streamed in the same item order: each item's
    answers (the answers with their items) and the comments on its units (the commented labels)."""

    def __init__(self, session: Session, project_id: int, names: Mapping[int, str]):
        self.names = names
        self.answers = exports.stream_item_answers(session=session, project_id=project_id)
        self.commented = exports.stream_unit_comments(session=session, project_id=project_id)
        self.next_answer = next(self.answers, None)
        self.next_comment = next(self.commented, None)
        self.rank: dict[int, int] = {}  # item id -> its place in export order, for the items passed so far
        # the current item's comments: (criterion id, answer id) -> rater name -> comment, in the order of raters
        self.comments: dict[tuple[int, int], dict[str, str]] = {}

    def item_of(self, answer_id: int) -> dict[int, exports.ItemAnswer]:
        """The answers, by id, of the next item in export order that the answer belongs to; its comments become
        `comments`. Items passed on the way have no gold, and their comments are passed over."""
        while self.next_answer is not None:
            item_id = self.next_answer.item_id
            self.rank[item_id] = len(self.rank)
            answers: dict[int, exports.ItemAnswer] = {}
            while self.next_answer is not None and self.next_answer.item_id == item_id:
                answers[self.next_answer.answer_id] = self.next_answer
                self.next_answer = next(self.answers, None)
            if answer_id in answers:
                self.comments = self._item_comments(item_id)
                return answers
        raise LookupError(f"Answer {answer_id} is not among the answers of the project's current open items.")

    def _item_comments(self, item_id: int) -> dict[tuple[int, int], dict[str, str]]:
        found: dict[tuple[int, int], dict[str, str]] = {}
        place = self.rank[item_id]
        while self.next_comment is not None:
            comment_item, criterion_id, answer_id, rater_id, comment = self.next_comment
            comment_place = self.rank.get(comment_item)
            if comment_place is None or comment_place > place:
                break  # an item still to come
            if comment_item == item_id:
                found.setdefault((criterion_id, answer_id), {})[self.names[rater_id]] = comment
            self.next_comment = next(self.commented, None)
        return found


def _gold_values(
    session: Session, *, project_id: int, pseudonymize: bool, json_text: bool
) -> Iterator[tuple[Any, ...]]:
    """The gold rows as tuples of their values in the order of GOLD_COLUMNS, merged from three reads streamed in
    export order: the gold units with their criteria and labels, the answers with their items, and the commented
    labels. With `json_text`, tags, conversation, labels and comments are their compact JSON text (each made once
    per distinct value), as Parquet stores them; else each row has its own lists and dicts."""
    names = rater_names(session, project_id=project_id, pseudonymize=pseudonymize)
    merge = _GoldMerge(session, project_id, names)
    item_answers: dict[int, exports.ItemAnswer] = {}
    conversation: Any = None
    tags_cache: _JsonCache = {}
    labels_cache: _JsonCache = {}  # the labels' text -> their JSON text, or their dict
    no_comments = "{}"
    for unit in exports.stream_gold_units(session=session, project_id=project_id):
        criterion_id, position, text, points, tags, axis, answer_id, gold, method, rationale, category, found = unit
        answer = item_answers.get(answer_id)
        if answer is None:  # the next item with gold: its answers and conversation, read once
            item_answers = merge.item_of(answer_id)
            answer = item_answers[answer_id]
            conversation = _parsed(answer.conversation, list)
            if json_text:
                conversation = _json_text(conversation)
        labels: Any = labels_cache.get(found)
        if labels is None:
            if len(labels_cache) >= JSON_CACHE:
                labels_cache.clear()
            labels = _unit_labels(found, names)
            labels = labels_cache[found] = _json_text(labels) if json_text else labels
        comments: Any = no_comments if json_text else {}
        if merge.comments:
            commented = merge.comments.get((criterion_id, answer_id))
            if commented:
                comments = _json_text(commented) if json_text else dict(commented)
        if json_text:
            found_tags = tags_cache.get(tags)
            if found_tags is None:
                if len(tags_cache) >= JSON_CACHE:
                    tags_cache.clear()
                found_tags = tags_cache[tags] = _json_text(_parsed(tags, list))
        else:
            found_tags, labels = _parsed(tags, list), dict(labels)  # each row its own
        yield (
            answer.external_id,
            answer.version,
            f"{answer.external_id}#{position}",
            text,
            points,
            found_tags,
            axis,
            conversation,
            answer.answer_external_id or f"answer-{answer_id}",
            answer.text or "",
            answer.model,
            labels,
            comments,
            gold,
            method,
            rationale or "",
            category,
        )


def _write_gold_parquet(values: Iterator[tuple[Any, ...]], out: BinaryIO) -> int:
    """Write gold rows (tuples in the order of GOLD_COLUMNS, JSON columns as text) as Parquet, ROW_GROUP rows per
    row group, each column built straight from its values; return how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = _arrow_types()
    schema = pa.schema([(column, arrow[GOLD_TYPES[column]]) for column in GOLD_COLUMNS])
    writer = pq.ParquetWriter(out, schema)
    written = 0
    try:
        while group := list(itertools.islice(values, ROW_GROUP)):
            columns = [
                pa.array(column, type=field.type)
                for column, field in zip(zip(*group, strict=True), schema, strict=True)
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            written += len(group)
    finally:
        writer.close()
    return written


def _json_piece(values: dict[str, Any]) -> bytes:
    """The compact JSON of the object's members, without its braces, for a JSON line built from pieces."""
    return orjson.dumps(values)[1:-1]


def _gold_lines(session: Session, *, project_id: int, pseudonymize: bool) -> Iterator[tuple[int, bytes]]:
    """The gold rows as JSON Lines, JSONL_BATCH lines at a time (how many, and their bytes): byte for byte what
    serialising each row (GOLD_COLUMNS in order) gives, joined from pieces serialised once each: per item (item id
    and version), per answer (conversation, answer id and text, model), per criterion (id, text, points, tags,
    axis), per distinct set of labels and per distinct set of gold columns; only comments are per unit."""
    names = rater_names(session, project_id=project_id, pseudonymize=pseudonymize)
    merge = _GoldMerge(session, project_id, names)
    item_answers: dict[int, bytes] = {}  # answer id -> its piece: conversation, answer id and text, model
    head = b""  # the item's piece: item id and version
    external_id = ""
    last_criterion, criterion_piece = -1, b""
    tags_cache: _JsonCache = {}
    labels_cache: _JsonCache = {}  # the labels' text -> their piece
    tail_cache: _JsonCache = {}  # (gold, method, rationale, disagreement category) -> their piece
    lines: list[bytes] = []
    for unit in exports.stream_gold_units(session=session, project_id=project_id):
        criterion_id, position, _, _, _, _, answer_id, _, _, _, _, found = unit
        answer = item_answers.get(answer_id)
        if answer is None:  # the next item with gold: its pieces, made once
            answers = merge.item_of(answer_id)
            first = next(iter(answers.values()))
            external_id = first.external_id
            head = b"{" + _json_piece({"item_id": external_id, "item_version": first.version}) + b","
            conversation = _json_value(first.conversation, {}, True, list)
            item_answers = {
                other.answer_id: b","
                + _json_piece(
                    {
                        "conversation": conversation,
                        "answer_id": other.answer_external_id or f"answer-{other.answer_id}",
                        "answer": other.text or "",
                        "model": other.model,
                    }
                )
                + b',"labels":'
                for other in answers.values()
            }
            answer = item_answers[answer_id]
            last_criterion = -1
        if criterion_id != last_criterion:  # an item's answers to one criterion come one after the other
            tags = _json_value(unit[4], tags_cache, True, list)
            criterion_piece = _json_piece(
                {
                    "criterion_id": f"{external_id}#{position}",
                    "criterion": unit[2],
                    "points": unit[3],
                    "tags": tags,
                    "axis": unit[5],
                }
            )
            last_criterion = criterion_id
        labels = labels_cache.get(found)
        if labels is None:
            if len(labels_cache) >= JSON_CACHE:
                labels_cache.clear()
            labels = labels_cache[found] = orjson.dumps(_unit_labels(found, names)) + b',"comments":'
        comments = _EMPTY_OBJECT
        if merge.comments:
            commented = merge.comments.get((criterion_id, answer_id))
            if commented:
                comments = orjson.dumps(commented)
        gold = unit[7:11]
        tail = tail_cache.get(gold)
        if tail is None:
            if len(tail_cache) >= JSON_CACHE:
                tail_cache.clear()
            tail = tail_cache[gold] = (
                b","
                + _json_piece(
                    {"gold": gold[0], "method": gold[1], "rationale": gold[2] or "", "disagreement_category": gold[3]}
                )
                + b"}\n"
            )
        lines += (head, criterion_piece, answer, labels, comments, tail)
        if len(lines) >= JSONL_BATCH * LINE_PIECES:
            yield JSONL_BATCH, b"".join(lines)
            lines.clear()
    if lines:
        yield len(lines) // LINE_PIECES, b"".join(lines)


# --- HealthBench items --------------------------------------------------------------------------------------


def healthbench_rows(session: Session, *, project_id: int) -> Iterator[dict[str, Any]]:
    """Yield the project's current open items (not retired) as HealthBench rows, by external id. Read-only."""
    for page in _item_pages(session, project_id, exclude_statuses=("retired",)):
        criteria = exports.item_criteria(session=session, item_ids=[item.item_id for item in page])
        for item in page:
            rubric = [criterion for criterion in criteria.get(item.item_id, []) if criterion.accepted]
            if not rubric:
                continue
            row: dict[str, Any] = {
                "prompt_id": item.external_id,
                "prompt": item.conversation,
                "rubrics": [{"criterion": c.text, "points": c.points, "tags": c.tags} for c in rubric],
                "example_tags": item.tags,
            }
            if item.specialties:
                row["specialties"] = item.specialties
            if item.dimension is not None:
                row["dimension"] = item.dimension
            for key, value in item.extra.items():
                row.setdefault(key, value)
            yield row


# --- HealthBench meta-eval ----------------------------------------------------------------------------------

_CLUSTER = re.compile(r"^cluster:")


def criterion_category(tags: Sequence[str], source_format: str | None) -> str | None:
    """A criterion's meta-eval category: the tag the meta-eval import appended (the last one) for items from
    meta-eval rows, else its last `cluster:` tag, else None. Pure."""
    if source_format == META_FORMAT and tags:
        return tags[-1]
    clusters = [tag for tag in tags if _CLUSTER.match(tag)]
    return clusters[-1] if clusters else None


def meta_eval_rows(session: Session, *, project_id: int) -> Iterator[dict[str, Any]]:
    """Yield one HealthBench meta-eval row (META_EVAL_COLUMNS) per unit of the project's current open items with
    at least one met / not met label of a physician or imported rater, in export order. Read-only."""
    physicians = _physician_ids(session, project_id)
    for page in _item_pages(session, project_id):
        items = {item.item_id: item for item in page}
        criteria = _page_criteria(session, page)
        units = exports.labelled_units(session=session, item_ids=list(items))
        for chunk, answers, labels in _unit_chunks(session, page, criteria, units):
            for answer_id, criterion_id, item_id in chunk:
                binary = [
                    label for label in labels.get((answer_id, criterion_id), []) if label.value in ("met", "not_met")
                ]
                if not binary:
                    continue
                item, criterion, answer = items[item_id], criteria[criterion_id], answers[answer_id]
                yield {
                    "prompt": item.conversation,
                    "completion": answer.text,
                    "rubric": criterion.text,
                    "binary_labels": [label.value == "met" for label in binary],
                    "anonymized_physician_ids": [physicians[label.rater_id] for label in binary],
                    "category": criterion_category(criterion.tags, item.source_format),
                    "prompt_id": item.external_id,
                    "completion_id": answer_external_id(answer),
                }


# --- one entry point ----------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "project"


def export_filename(*, kind: str, project_name: str, fmt: str = "jsonl") -> str:
    """The file name an export is offered under: "<project>-<kind>.<format>", e.g. "demo-clinic-gold.jsonl".
    Pure."""
    return f"{_slug(project_name)}-{kind}.{fmt}"


def check_export(kind: str, fmt: str) -> None:
    """Raise ExportError when there is no such export kind or format, or the kind has no form in that format.
    Pure."""
    if kind not in KINDS:
        raise ExportError(f"There is no {kind!r} export; choose one of {', '.join(KINDS)}.")
    if fmt not in FORMATS:
        raise ExportError(f"There is no {fmt!r} format; choose one of {', '.join(FORMATS)}.")
    if kind in JSONL_ONLY and fmt != "jsonl":
        raise ExportError(f"The {kind} export is HealthBench's own JSON Lines format; it has no {fmt} form.")


@_without_cyclic_gc  # an export makes millions of short-lived rows that hold no cycles
def export(
    session: Session,
    *,
    kind: str,
    project_name: str,
    out: BinaryIO,
    fmt: str = "jsonl",
    pseudonymize: bool = True,
) -> int:
    """Write one export of the project to `out` (gold: jsonl, csv or parquet; healthbench and meta-eval: jsonl);
    return the number of rows. Raises ExportError (nothing written) for an unknown kind, format or project.
    Read-only."""
    check_export(kind, fmt)
    project = projects.get_project_by_name(session=session, name=project_name.strip())
    if project is None or project.id is None:
        raise ExportError(f"There is no project named {project_name!r}.")
    if kind == "gold" and fmt == "jsonl":
        written = 0
        for count, lines in _gold_lines(session, project_id=project.id, pseudonymize=pseudonymize):
            out.write(lines)
            written += count
        return written
    if kind == "gold" and fmt == "parquet":
        values = _gold_values(session, project_id=project.id, pseudonymize=pseudonymize, json_text=True)
        return _write_gold_parquet(values, out)
    if kind == "gold":
        rows = gold_rows(session, project_id=project.id, pseudonymize=pseudonymize)
        return write_rows(rows, out, fmt, columns=GOLD_COLUMNS, column_types=GOLD_TYPES)
    if kind == "healthbench":
        return write_rows(healthbench_rows(session, project_id=project.id), out, fmt, columns=HEALTHBENCH_COLUMNS)
    return write_rows(meta_eval_rows(session, project_id=project.id), out, fmt, columns=META_EVAL_COLUMNS)

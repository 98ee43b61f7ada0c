"""Import benchmark: 5,000 HealthBench-like items (~50,000 criteria) into a fresh SQLite file.

Run with `.venv/bin/python bench/import_bench.py` (or `make bench`). The items are built from the
real HealthBench rows in ../shared/data/healthbench: the 134 rows are cycled, each copy gets a
unique prompt_id and slightly different text (so content hashes differ), and each rubric is
padded or trimmed so that items have about 10 criteria (6..14, exactly 10 on average).

Measured, each `--repeat` times, and reported as medians:

  (a) medreview: review.importing.import_items in a storage.db.write_session into a fresh,
      migrated SQLite file (reading the file included; migrating not included);
  (b) raw sqlite3: the same rows, serialized beforehand, `executemany`'d into two plain tables
      of a fresh WAL file in one transaction: the floor the import is compared to;
  (c) re-import: the same file into the database of (a) again (must add nothing).

The 5,000-item file (~75 MiB) is larger than the default 64 MiB import limit, so the benchmark
passes max_bytes. Wall and CPU seconds are both shown: the CPU time of this process is steadier
on a shared machine. `--profile N` adds a cProfile of one import.

Targets: first import <= 3 s, re-import <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import json
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from review import importing  # noqa: E402
from review.formats import MAX_FILE_BYTES, parse_items  # noqa: E402
from review.setup import prepare_database  # noqa: E402
from storage import items as item_store  # noqa: E402
from storage.db import make_engine, write_session  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
HEALTHBENCH = SHARED_DATA / "healthbench"
PROJECT = "Import bench"
TARGET_IMPORT_S = 3.0
TARGET_REIMPORT_S = 1.0
CRITERIA_PER_ITEM = 10
SPREAD = (-4, -3, -2, -1, 0, 1, 2, 3, 4)  # criteria per item = 10 + SPREAD[i % 9]: 6..14, mean 10


# --- the data ----------------------------------------------------------------------------------------


def source_rows() -> list[dict[str, Any]]:
    """The real HealthBench rows from the shared data folder, in file order."""
    files = sorted(HEALTHBENCH.glob("*.jsonl"))
    if not files:
        sys.exit(f"import_bench: no HealthBench rows found in {HEALTHBENCH}")
    rows = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    return rows


def _rubric(own: list[dict[str, Any]], pool: list[dict[str, Any]], wanted: int, i: int) -> list[dict[str, Any]]:
    """The row's own criteria, trimmed to `wanted` or padded with example-specific criteria from the pool."""
    result = [dict(c) for c in own[:wanted]]
    start = (i * 7) % len(pool)
    result += [dict(pool[(start + k) % len(pool)]) for k in range(wanted - len(result))]
    if not any(c["points"] > 0 for c in result):  # trimming may drop every positive criterion
        result[-1] = dict(next(c for c in own + pool if c["points"] > 0))
    return result


def build_rows(n_items: int, per_item: int = CRITERIA_PER_ITEM) -> list[dict[str, Any]]:
    """n_items HealthBench rows: the real rows cycled, ids unique, text varied, ~per_item criteria.

    Rubrics are padded with the example-specific criteria of the rows that have them (the
    Hard sample, ~280 characters each, like most of HealthBench), not by repeating the
    3,000-character consensus cluster criteria. Rows keep their ideal_completions_data (about
    6.7 KB a row), so 5,000 items make a file of about 75 MiB.
    """
    base = source_rows()
    pool = [c for row in base if len(row["rubrics"]) > 2 for c in row["rubrics"]]
    rows = []
    total_wanted = n_items * per_item
    for i in range(n_items):
        source = base[i % len(base)]
        row = copy.deepcopy(source)
        row["prompt_id"] = f"{source['prompt_id']}-bench-{i:06d}"
        last_user = max(k for k, m in enumerate(row["prompt"]) if m["role"] == "user")
        row["prompt"][last_user]["content"] += f" (bench variant {i})"
        wanted = max(1, per_item + SPREAD[i % len(SPREAD)])
        if i == n_items - 1:  # land exactly on n_items * per_item
            wanted = max(1, total_wanted - sum(len(r["rubrics"]) for r in rows))
        row["rubrics"] = _rubric(source["rubrics"], pool, wanted, i)
        rows.append(row)
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")


# --- (a) and (c): medreview --------------------------------------------------------------------------


def _fresh_engine(path: Path) -> Any:
    path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    prepare_database(engine)
    return engine


def _limit(size: int) -> int:
    """The default import limit (64 MiB), or the file's size when that is larger (as with 5,000 items)."""
    return max(MAX_FILE_BYTES, size)


class Clock:
    """Wall and CPU seconds of this process since start (CPU time is steadier on a shared machine)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def medreview_import(engine: Any, jsonl: Path) -> tuple[tuple[float, float], importing.ImportReport]:
    clock = Clock()
    data = jsonl.read_bytes()
    with write_session(engine) as session:
        report = importing.import_items(
            session, project_name=PROJECT, data=data, filename=jsonl.name, fmt="auto", max_bytes=_limit(len(data))
        )
    return clock.stop(), report


# --- (e): a physician writing while the import runs ------------------------------------------

WRITER = r"""
import json, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
import os
conn = sqlite3.connect(db, isolation_level=None, timeout=60)
conn.execute("PRAGMA busy_timeout=60000")
waits = []
while not os.path.exists(stop):
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO auditevent (at, action, entity, detail) VALUES (datetime('now'), 'bench', 'bench', '{}')"
    )
    conn.execute("COMMIT")
    waits.append(time.perf_counter() - start)
    time.sleep(0.02)
print(json.dumps(waits))
"""


def concurrent_write_waits(path: Path, jsonl: Path) -> list[float]:
    """Seconds each small write transaction of another process took while one import ran."""
    engine = _fresh_engine(path)
    stop = path.with_suffix(".stop")
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # the writer is writing before the import starts
        medreview_import(engine, jsonl)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=120)
        engine.dispose()
    return [float(x) for x in json.loads(out)]


# --- (b): raw sqlite3 --------------------------------------------------------------------------------

RAW_SCHEMA = """
CREATE TABLE item (
    id INTEGER PRIMARY KEY, project_id INTEGER, external_id TEXT, kind TEXT, version INTEGER,
    is_current INTEGER, status TEXT, specialties TEXT, dimension TEXT, tags TEXT, content_hash TEXT,
    conversation TEXT, question TEXT, options TEXT, answer_key TEXT, explanation TEXT, meta_info TEXT,
    extra TEXT, source_format TEXT, previous_version_id INTEGER, import_batch_id INTEGER,
    created_at TEXT, created_by INTEGER
);
CREATE TABLE criterion (
    id INTEGER PRIMARY KEY, item_id INTEGER, position INTEGER, text TEXT, points INTEGER, tags TEXT,
    axis TEXT, flagged INTEGER, generated INTEGER, accepted INTEGER
);
"""


def raw_rows(jsonl: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The item and criterion rows of the file, JSON columns serialized, ready for executemany."""
    data = jsonl.read_bytes()
    parsed = parse_items(data, jsonl.name, "healthbench", max_bytes=_limit(len(data)))
    if len({item.content_hash for item in parsed}) != len(parsed):
        sys.exit("import_bench: two generated items have the same content hash")
    now = datetime.now(UTC).isoformat()

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    item_rows, criterion_rows = [], []
    for item_id, item in enumerate(parsed, start=1):
        item_rows.append(
            (
                item_id, 1, item.external_id, item.kind, 1, 1, "draft", dumps(item.specialties), item.dimension,
                dumps(item.tags), item.content_hash, dumps(item.conversation), item.question, dumps(item.options),
                item.answer_key, item.explanation, item.meta_info, dumps(item.extra), item.source_format, None, 1,
                now, None,
            )
        )  # fmt: skip
        criterion_rows.extend(
            (item_id, position, c.text, c.points, dumps(c.tags), c.axis, 0, 0, 1)
            for position, c in enumerate(item.criteria)
        )
    return item_rows, criterion_rows


def raw_import(
    path: Path, item_rows: list[tuple[Any, ...]], criterion_rows: list[tuple[Any, ...]]
) -> tuple[float, float]:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(RAW_SCHEMA)
        clock = Clock()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(f"INSERT INTO item VALUES ({', '.join('?' * 23)})", item_rows)
        connection.executemany(
            "INSERT INTO criterion (item_id, position, text, points, tags, axis, flagged, generated, accepted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            criterion_rows,
        )
        connection.execute("COMMIT")
        return clock.stop()
    finally:
        connection.close()


# --- one import split into stages --------------------------------------------------------------------


@contextlib.contextmanager
def _timed(owner: Any, name: str, totals: dict[str, float], label: str) -> Iterator[None]:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def stage_split(db: Path, jsonl: Path) -> tuple[float, dict[str, float]]:
    """One import with its main steps timed (the wrappers cost microseconds)."""
    engine = _fresh_engine(db)
    totals: dict[str, float] = {}
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_timed(importing, "parse_items", totals, "parse + validate + hash"))
            stack.enter_context(_timed(item_store, "current_items_by_external_id", totals, "look up existing items"))
            stack.enter_context(_timed(item_store, "add_items", totals, "insert items"))
            stack.enter_context(_timed(item_store, "add_criteria", totals, "insert criteria"))
            stack.enter_context(_timed(Session, "commit", totals, "commit (write to the WAL, checkpoint)"))
            (seconds, _), _ = medreview_import(engine, jsonl)
    finally:
        engine.dispose()
    totals["other (read file, project, batch, audit)"] = seconds - sum(totals.values())
    return seconds, totals


def profile_import(db: Path, jsonl: Path, limit: int) -> None:
    engine = _fresh_engine(db)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        medreview_import(engine, jsonl)
        profiler.disable()
    finally:
        engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    print(out.getvalue())


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=5000, help="items to generate (default 5000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--no-split", action="store_true", help="skip the per-stage split of one import")
    parser.add_argument("--profile", type=int, metavar="N", default=0, help="also cProfile one import, top N lines")
    args = parser.parse_args(argv)
    if args.items < 1 or args.repeat < 1:
        parser.error("--items and --repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="medreview-bench-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "healthbench_bench.jsonl"
        rows = build_rows(args.items)
        write_jsonl(rows, jsonl)
        n_items = len(rows)
        n_criteria = sum(len(r["rubrics"]) for r in rows)
        n_rows = n_items + n_criteria
        size_mib = jsonl.stat().st_size / 1048576
        del rows
        print(
            f"data: {n_items:,} items, {n_criteria:,} criteria ({n_rows:,} rows) from "
            f"{len(source_rows())} real HealthBench rows; file {size_mib:.1f} MiB"
            + (
                " (above the 64 MiB default import limit: max_bytes raised)"
                if size_mib * 1048576 > MAX_FILE_BYTES
                else ""
            )
        )
        item_rows, criterion_rows = raw_rows(jsonl)
        # the same rows in other bytes (a trailing blank line): a re-import that must parse every row
        reworded = folder / "healthbench_bench_same_rows.jsonl"
        reworded.write_bytes(jsonl.read_bytes() + b"\n")

        runs: dict[str, list[tuple[float, float]]] = {"import": [], "raw": [], "reimport": [], "reparse": []}
        for run in range(1, args.repeat + 1):
            engine = _fresh_engine(folder / f"medreview-{run}.db")
            try:
                first, report = medreview_import(engine, jsonl)
                if report.items_added != n_items or report.criteria_added != n_criteria:
                    sys.exit(
                        f"import_bench: the import added {report.items_added} items, {report.criteria_added} criteria"
                    )
                again, report = medreview_import(engine, jsonl)
                if report.items_added or report.criteria_added or report.items_unchanged != n_items:
                    sys.exit(f"import_bench: the re-import was not a no-op: {report.as_dict()}")
                reparse, report = medreview_import(engine, reworded)
                if report.items_added or report.criteria_added or report.items_unchanged != n_items:
                    sys.exit(f"import_bench: the re-import of the same rows was not a no-op: {report.as_dict()}")
            finally:
                engine.dispose()
            raw = raw_import(folder / f"raw-{run}.db", item_rows, criterion_rows)
            runs["import"].append(first)
            runs["reimport"].append(again)
            runs["reparse"].append(reparse)
            runs["raw"].append(raw)
            print(
                f"  run {run}: import {first[0]:.3f} s (cpu {first[1]:.3f}), re-import {again[0]:.3f} s "
                f"(cpu {again[1]:.3f}), same rows re-parsed {reparse[0]:.3f} s (cpu {reparse[1]:.3f}), "
                f"raw sqlite3 {raw[0]:.3f} s (cpu {raw[1]:.3f})"
            )

        median = {name: tuple(statistics.median(v[i] for v in values) for i in (0, 1)) for name, values in runs.items()}
        raw_wall = median["raw"][0]
        print()
        print(f"medians of {args.repeat} run(s); {n_rows:,} rows = {n_items:,} items + {n_criteria:,} criteria")
        print(f"{'measurement':<25}{'wall s':>9}{'cpu s':>9}{'rows/s':>10}{'vs raw':>8}{'target':>9}  result")
        for name, label, target in (
            ("import", "(a) medreview import", TARGET_IMPORT_S),
            ("raw", "(b) raw sqlite3", None),
            ("reimport", "(c) re-import same file", TARGET_REIMPORT_S),
            ("reparse", "(d) same rows, new bytes", None),
        ):
            wall, cpu = median[name]
            verdict = "" if target is None else ("ok" if wall <= target else "MISSED")
            goal = "" if target is None else f"<= {target:g} s"
            print(
                f"{label:<25}{wall:>9.3f}{cpu:>9.3f}{n_rows / wall:>10,.0f}{wall / raw_wall:>7.1f}x{goal:>9}  {verdict}"
            )
        print(f"ratio medreview / raw sqlite3 (wall): {median['import'][0] / raw_wall:.1f}")
        print(
            "(c) is recognised by the file's digest (nothing in the project changed since it was imported);"
            " (d) parses, validates and hashes every row and finds each unchanged"
        )
        print(f"targets: first import <= {TARGET_IMPORT_S:g} s, re-import <= {TARGET_REIMPORT_S:g} s (wall, medians)")

        waits = sorted(concurrent_write_waits(folder / "concurrent.db", jsonl))
        p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
        print(
            f"(e) another process writing every 20 ms during one import: {len(waits)} writes, "
            f"median {1000 * statistics.median(waits):.1f} ms, p99 {1000 * p99:.0f} ms, "
            f"longest {1000 * waits[-1]:.0f} ms (batches of {importing.BATCH_ITEMS} items)"
        )

        if not args.no_split:
            seconds, totals = stage_split(folder / "split.db", jsonl)
            print()
            print(f"one import split by stage ({seconds:.3f} s):")
            for label, value in totals.items():
                print(f"  {label:<42}{value:>8.3f} s{100 * value / seconds:>6.0f}%")
        if args.profile:
            profile_import(folder / "profile.db", jsonl, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

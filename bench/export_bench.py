"""Export benchmark: the gold export of 1,000,000 (answer, criterion) rows, as JSONL and as Parquet.

Builds (in a temporary folder, or at --database to keep it for later runs) the agreement benchmark's database
(bench/agreement_bench.py: 100,000 open items of 10 criteria, one answer each, physicians who labelled every unit)
and gives every unit a current gold label. Then each export runs --runs times, each in a fresh process
(`python bench/export_bench.py --export ...`), so its peak memory is its own: time to write the file, its size and
the process's peak resident memory, each run's seconds and their median, and the median CPU seconds (the export's
own work, less skewed by other work on the machine). Targets (issue 6): JSONL at most 10 s, peak memory at most
500 MB. The machine's load average is printed with the figures: other work skews them.

    .venv/bin/python bench/export_bench.py [--units 1000000] [--raters 2] [--formats jsonl parquet] [--runs 3]
        [--database PATH]

With --database, an existing file there (built earlier with the same --units and --raters) is brought to the
newest schema, so an index added since is there, then exported; a missing one is built there and kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agreement_bench import NOW, PROJECT, build_database  # noqa: E402


def add_gold(path: Path) -> int:
    """Give every unit of the database a current automatic gold label (the majority of its labels); return how many."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO goldlabel (answer_id, criterion_id, value, method, rationale, labels_seen, version, is_current,"
        " decided_at) SELECT answer_id, criterion_id, CASE WHEN SUM(value = 'met') * 2 >= COUNT(*) THEN 'met'"
        " ELSE 'not_met' END, CASE WHEN MIN(value) = MAX(value) THEN 'unanimous' ELSE 'majority' END, '', COUNT(*),"
        " 1, 1, ? FROM criterionlabel GROUP BY answer_id, criterion_id",
        (NOW,),
    )
    count = conn.execute("SELECT COUNT(*) FROM goldlabel").fetchone()[0]
    conn.execute("COMMIT")
    conn.close()
    return int(count)


def export_once(database: Path, fmt: str, out: Path) -> dict[str, float]:
    """Run one gold export in this process; its figures (wall-clock and CPU seconds: on a busy machine the CPU time
    shows the export's own work)."""
    from review import exports
    from storage.db import make_engine, read_session

    engine = make_engine(f"sqlite:///{database}")
    started, cpu_started = time.perf_counter(), time.process_time()
    with read_session(engine) as session, out.open("wb") as stream:
        rows = exports.export(session, kind="gold", project_name=PROJECT, out=stream, fmt=fmt)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_mb": peak_mb,
        "bytes": out.stat().st_size,
    }


def build(database: Path, units: int, raters: int) -> None:
    """Build the benchmark's database at `database`, gold labels included, and say how long it took."""
    started = time.perf_counter()
    build_database(database, units, raters)
    gold = add_gold(database)
    print(
        f"built {units:,} units, {units * raters:,} labels, {gold:,} gold labels "
        f"in {time.perf_counter() - started:.0f} s"
    )


def upgrade(database: Path) -> None:
    """Bring a kept database to the newest schema."""
    from storage import migrate
    from storage.db import make_engine

    engine = make_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    engine.dispose()


def run_exports(database: Path, folder: Path, formats: list[str], runs: int) -> None:
    """Time each format's export `runs` times, each in a fresh process; print every run and the median."""
    header = f"{'format':>8} {'rows':>10} {'seconds':>8} {'MB written':>11} {'peak MB':>8} {'CPU s':>6}"
    print(f"{header}  runs (s)   load average")
    for fmt in formats:
        out = folder / f"gold.{fmt}"
        figures = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, __file__, "--export", str(database), fmt, str(out)],
                capture_output=True,
                text=True,
                check=True,
            )
            figures.append(json.loads(done.stdout.strip().splitlines()[-1]))
            out.unlink()
        seconds = [figure["seconds"] for figure in figures]
        peak_mb = max(figure["peak_mb"] for figure in figures)
        cpu_seconds = statistics.median(figure["cpu_seconds"] for figure in figures)
        runs_text = " ".join(f"{value:.1f}" for value in seconds)
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"{fmt:>8} {figures[0]['rows']:>10,} {statistics.median(seconds):>8.1f}"
            f" {figures[0]['bytes'] / 1e6:>11.0f} {peak_mb:>8.0f} {cpu_seconds:>6.1f}  {runs_text}   {load}"
        )
    print(f"seconds and CPU s: medians of {runs} run(s); peak MB: the largest")
    print("targets: JSONL at most 10 s; peak memory at most 500 MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=["jsonl", "parquet"])
    parser.add_argument("--runs", type=int, default=1, help="exports of each format; the median is shown")
    parser.add_argument("--database", type=Path, help="keep the database here (exported as it is if it exists)")
    parser.add_argument("--export", nargs=3, metavar=("DATABASE", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export:
        database, fmt, out = args.export
        print(json.dumps(export_once(Path(database), fmt, Path(out))))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        database = args.database or Path(folder) / "export_bench.db"
        if database.exists():
            upgrade(database)
        else:
            build(database, args.units, args.raters)
        run_exports(database, Path(folder), args.formats, max(1, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Items benchmark: 50,000 items; the near-duplicate check of one new item against all of them, and the
Items page's server-side runs with a filter set while moving between pages.

Builds (once per run, in a temporary folder, or once in the --database file) a SQLite database through the
importer, so every item is signed and checked for near-duplicates as it would be in use:
  - "Bench reference": 10,000 items (8,000 MCQ + 2,000 open), marked as a reference set;
  - "Bench": 40,000 items (30,000 MCQ, approved; 10,000 open, draft), checked at import against itself
    and the reference set.
The texts come from the shared MedQA and HealthBench rows: each synthetic item joins sentences of several
real items (a stem from one, findings from others, options from others), so items read like real ones and
are mostly distinct; specialties, dimensions and tags vary.

Then times, over --runs runs each:
  (a) duplicates.find_matches of one new item (the editor's check of unsaved content) against all 50,000,
      each in a fresh session; half of the new items are near-copies of a stored one (so there is something to
      find), half are new compositions:
        - cold: no signatures kept in memory (the first check in a process), all read from the database;
        - warm: the signatures kept in memory, checked against the database;
        - on a copy of the database, the first check after each save as the Item editor makes it (the version
          saved, then signed and checked): an item edited in place (its signature replaced, read again alone)
          and a new item (a signature added, read alone);
  (b) the Items page (pages/items.py) through AppTest, signed in as a curator, compiled scripts kept as
      a server keeps them: the run after setting a filter and the runs after moving between pages.
Targets (issue 7): page p95 <= 150 ms; one duplicate check <= 200 ms.

    .venv/bin/python bench/items_bench.py [--runs 20] [--page-runs 30] [--no-page] [--database FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from review import accounts, duplicates, editing, importing  # noqa: E402
from review.formats import DIMENSIONS  # noqa: E402
from review.setup import prepare_database  # noqa: E402
from review.taxonomy import DEFAULT_SPECIALTIES  # noqa: E402
from storage import projects, users  # noqa: E402
from storage import similarity as signatures  # noqa: E402
from storage.db import make_engine, read_session, write_session  # noqa: E402
from storage.models import Item  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PASSWORD = "bench-password"
CURATOR = "bench-curator"
PROJECT, REFERENCE = "Bench", "Bench reference"
TARGET_PAGE_P95_MS, TARGET_CHECK_MS = 150.0, 200.0
SENTENCE = re.compile(r"(?<=[.?!])\s+")
TAGS = ["pilot", "round-2", "hard", "needs-review", "pediatric", "ed"]


# --- the data ------------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class Sources:
    """Sentences, question stems, options, conversations and criteria of the shared rows."""

    def __init__(self) -> None:
        medqa = _rows(SHARED / "medqa" / "medqa_5options_test.jsonl") + _rows(
            SHARED / "medqa" / "medqa_test_hard.jsonl"
        )
        healthbench = _rows(SHARED / "healthbench" / "hard_sample_30.jsonl") + _rows(
            SHARED / "healthbench" / "context_seeking_consensus_hard_104.jsonl"
        )
        self.openings, self.findings, self.asks = [], [], []
        for row in medqa:
            sentences = [s for s in SENTENCE.split(row["question"].strip()) if s]
            if len(sentences) >= 3:
                self.openings.append(sentences[0])
                self.findings.extend(sentences[1:-1])
                self.asks.append(sentences[-1])
        self.options = [text for row in medqa for text in row["options"].values()]
        self.turns = [
            s
            for row in healthbench
            for message in row["prompt"]
            if message["role"] == "user"
            for s in SENTENCE.split(message["content"].strip())
            if len(s.split()) >= 4
        ]
        self.replies = [
            s
            for row in healthbench
            for message in row["prompt"]
            if message["role"] == "assistant"
            for s in SENTENCE.split(message["content"].strip())
            if len(s.split()) >= 4
        ]
        self.criteria = [c for row in healthbench for c in row["rubrics"]]


def _labels(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "specialties": rng.sample(DEFAULT_SPECIALTIES, 1 + n % 2),
        "dimension": list(DIMENSIONS)[n % len(DIMENSIONS)],
        "tags": rng.sample(TAGS, n % 3),
    }


def mcq_row(n: int, prefix: str, sources: Sources, rng: random.Random) -> dict[str, Any]:
    """A MedQA-style row: an opening, findings from other vignettes, a question, five options."""
    question = " ".join(
        [rng.choice(sources.openings), *rng.sample(sources.findings, rng.randint(4, 8)), rng.choice(sources.asks)]
    )
    options = dict(zip("ABCDE", rng.sample(sources.options, 5), strict=True))
    key = rng.choice("ABCDE")
    meta = rng.choice(["step1", "step2&3"])
    return {
        "id": f"{prefix}-mcq-{n:06d}",
        "question": question,
        "options": options,
        "answer_idx": key,
        "meta_info": meta,
        **_labels(n, rng),
    }


def open_row(n: int, prefix: str, sources: Sources, rng: random.Random) -> dict[str, Any]:
    """A HealthBench-style row: one or three turns of patient sentences, a rubric of real criteria."""

    def user() -> str:
        return " ".join(rng.sample(sources.turns, rng.randint(2, 5)))

    prompt = [{"role": "user", "content": user()}]
    if n % 3 == 0:
        reply = " ".join(rng.sample(sources.replies, rng.randint(2, 4)))
        prompt += [{"role": "assistant", "content": reply}, {"role": "user", "content": user()}]
    rubrics = [dict(c) for c in rng.sample(sources.criteria, rng.randint(3, 6))]
    if not any(c["points"] > 0 for c in rubrics):
        rubrics.append({"criterion": "Advises seeing a clinician.", "points": 5, "tags": ["axis:accuracy"]})
    return {"prompt_id": f"{prefix}-open-{n:06d}", "prompt": prompt, "rubrics": rubrics, **_labels(n, rng)}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _import(engine: Any, project: str, rows: list[dict[str, Any]], name: str, status: str) -> importing.ImportReport:
    data = _jsonl(rows)
    with write_session(engine) as session:
        return importing.import_items(
            session, project_name=project, data=data, filename=name, status=status, max_bytes=len(data) + 1
        )


def build_database(path: Path, sources: Sources, rng: random.Random) -> dict[str, Any]:
    """Import the reference set (marked as one) and the bench project; return counts and timings."""
    engine = make_engine(f"sqlite:///{path}")
    prepare_database(engine)
    with write_session(engine) as session:
        accounts.create_user(session, username="bench-admin", role="admin", password=PASSWORD)  # no first-run form
        accounts.create_user(session, username=CURATOR, role="curator", password=PASSWORD)
    facts: dict[str, Any] = {}
    started = time.perf_counter()
    reports = [
        _import(engine, REFERENCE, [mcq_row(n, "ref", sources, rng) for n in range(8000)], "ref-mcq.jsonl", "approved"),
        _import(
            engine, REFERENCE, [open_row(n, "ref", sources, rng) for n in range(2000)], "ref-open.jsonl", "approved"
        ),
    ]
    with write_session(engine) as session:
        reference = projects.get_project_by_name(session=session, name=REFERENCE)
        assert reference is not None and reference.id is not None
        duplicates.set_reference(session, project_id=reference.id, is_reference=True, actor_id=None)
    bench_mcq = [mcq_row(n, "b", sources, rng) for n in range(30000)]
    facts["stored_mcq"] = bench_mcq[::150]  # 200 of them, for near-copies to look for
    reports += [
        _import(engine, PROJECT, bench_mcq, "mcq.jsonl", "approved"),
        _import(engine, PROJECT, [open_row(n, "b", sources, rng) for n in range(10000)], "open.jsonl", "draft"),
    ]
    facts["build_s"] = time.perf_counter() - started
    facts["items"] = sum(r.items_added for r in reports)
    facts["criteria"] = sum(r.criteria_added for r in reports)
    facts["near_duplicates"] = sum(r.near_duplicates for r in reports)
    facts["import_s"] = [r.seconds for r in reports]
    with read_session(engine) as session:
        bench = projects.get_project_by_name(session=session, name=PROJECT)
        assert bench is not None and bench.id is not None
        facts["project_id"] = bench.id
    engine.dispose()
    return facts


def stored_facts(path: Path) -> dict[str, Any]:
    """What build_database returns that the timings need, read from a database built before."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        with read_session(engine) as session:
            bench = projects.get_project_by_name(session=session, name=PROJECT)
            assert bench is not None and bench.id is not None, f"{path} has no project {PROJECT!r}"
            stored = {
                item.external_id: item
                for item in session.exec(
                    select(Item).where(Item.project_id == bench.id, col(Item.external_id).like("b-mcq-%"))
                )
            }
            items = session.exec(select(func.count()).select_from(Item)).one()
    finally:
        engine.dispose()
    originals = [stored[f"b-mcq-{n:06d}"] for n in range(0, 30000, 150)]
    return {
        "project_id": bench.id,
        "items": items,
        "stored_mcq": [{"question": item.question, "options": dict(item.options)} for item in originals],
    }


# --- (a) one duplicate check ---------------------------------------------------------------------------


def _near_copy(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A stored item with a few words changed, the ages changed and the options in another order."""
    words = row["question"].split()
    for _ in range(3):
        words[rng.randrange(len(words))] = rng.choice(["patient", "acute", "severe", "recent", "mild"])
    question = re.sub(r"\d+", lambda m: str(int(m.group()) + 3), " ".join(words))
    letters = list(row["options"])
    texts = rng.sample(list(row["options"].values()), len(letters))
    return {"question": question, "options": dict(zip(letters, texts, strict=True))}


def _new_items(originals: list[dict[str, Any]], sources: Sources, runs: int) -> list[tuple[dict[str, Any], str]]:
    """The unsaved items checked (half near-copies of stored ones, half new compositions), and the stored item
    each stands for (as when an item is edited)."""
    rng = random.Random(7)
    found = []
    for run in range(runs):
        new = _near_copy(rng.choice(originals), rng) if run % 2 == 0 else mcq_row(100_000 + run, "new", sources, rng)
        found.append((new, f"b-mcq-{rng.randrange(30000):06d}"))
    return found


def _find(engine: Any, project_id: int, new: dict[str, Any], edited: str) -> tuple[float, int]:
    """Seconds of one find_matches in a fresh session (as the editor's check runs), and matches found."""
    start = time.perf_counter()
    with read_session(engine) as session:
        matches = duplicates.find_matches(
            session,
            project_id=project_id,
            kind="mcq",
            conversation=[],
            question=new["question"],
            options=new["options"],
            exclude_external_id=edited,
        )
    return time.perf_counter() - start, len(matches)


Timings = list[tuple[str, list[float], list[int]]]


def check_timings(path: Path, project_id: int, originals: list[dict[str, Any]], sources: Sources, runs: int) -> Timings:
    """Seconds of find_matches for new MCQ items, and matches found: cold (no signatures kept in memory: the first
    check in a process), warm (kept), and the first check after a save that changed one item's signature (kept,
    brought up to date), on a copy of the database."""
    checked = _new_items(originals, sources, runs)
    timings: Timings = []
    engine = make_engine(f"sqlite:///{path}")
    try:
        _find(engine, project_id, {"question": "warm up", "options": {}}, "")  # the connection pool, the imports
        cold: list[tuple[float, int]] = []
        for new, edited in checked:
            signatures.forget_signatures()
            cold.append(_find(engine, project_id, new, edited))
        timings.append(("find_matches vs 50,000: cold (read from the database)", *_columns(cold)))
        _find(engine, project_id, checked[0][0], checked[0][1])
        warm = [_find(engine, project_id, new, edited) for new, edited in checked]
        timings.append(("find_matches vs 50,000: warm (kept in memory)", *_columns(warm)))
    finally:
        engine.dispose()
    with tempfile.TemporaryDirectory(prefix="medreview-items-copy-") as tmp:
        copy = Path(tmp) / "copy.db"
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        timings += _timings_after_saves(copy, project_id, checked)
    return timings


def _timings_after_saves(path: Path, project_id: int, checked: list[tuple[dict[str, Any], str]]) -> Timings:
    """find_matches right after a save as the Item editor makes it (the version saved, signed and checked):
    an item edited in place (its signature replaced), and a new item (a signature added)."""
    engine = make_engine(f"sqlite:///{path}")
    in_place: list[tuple[float, int]] = []
    added: list[tuple[float, int]] = []
    try:
        with read_session(engine) as session:
            curator = users.get_user_by_username(session=session, username=CURATOR)
        assert curator is not None and curator.id is not None
        _find(engine, project_id, checked[0][0], checked[0][1])
        for run, (new, edited) in enumerate(checked):
            with write_session(engine) as session:
                item_id = signatures.current_item_id(session=session, project_id=project_id, external_id=edited)
                assert item_id is not None
                draft = editing.draft_of(session, item_id=item_id)
                draft.question = f"{draft.question} The patient returns {run + 2} days later."
                saved = editing.save_item(session, draft, actor_id=curator.id, role="curator")
            assert saved.outcome == "edited", saved.outcome
            with write_session(engine) as session:
                duplicates.check_items(session, item_ids=[saved.item_id])
            in_place.append(_find(engine, project_id, new, edited))
            with write_session(engine) as session:
                draft = editing.new_draft(project_id=project_id, kind="mcq")
                draft.external_id = f"after-save-{run:03d}"
                draft.question = new["question"]
                draft.options = sorted(new["options"].items())
                draft.answer_key = "A"
                saved = editing.save_item(session, draft, actor_id=curator.id, role="curator")
            assert saved.outcome == "created", saved.outcome
            with write_session(engine) as session:
                duplicates.check_items(session, item_ids=[saved.item_id])
            added.append(_find(engine, project_id, new, draft.external_id))
    finally:
        engine.dispose()
    return [
        ("  first after a save that edited an item in place", *_columns(in_place)),
        ("  first after a save that added an item", *_columns(added)),
    ]


def _columns(results: list[tuple[float, int]]) -> tuple[list[float], list[int]]:
    return [seconds for seconds, _ in results], [found for _, found in results]


# --- (b) the Items page -----------------------------------------------------------------------------------


def page_timings(path: Path, runs: int) -> list[tuple[str, list[float]]]:
    """Seconds of the Items page's runs: after setting a filter, and after moving to another page."""
    from bench_page import _like_a_running_server, _one_script_cache
    from streamlit.testing.v1 import AppTest

    os.environ["MEDREVIEW_DATABASE_URL"] = f"sqlite:///{path}"
    _like_a_running_server()
    _one_script_cache()
    filter_runs: list[float] = []
    page_runs: list[float] = []
    filters = [
        ("items_filter_kind", "mcq"),
        ("items_filter_status", "approved"),
        ("items_filter_specialty", "Cardiology"),
        ("items_filter_dimension", "knowledge"),
    ]
    rounds = 0
    while len(page_runs) < runs:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.text_input(key="sign_in_username").set_value(CURATOR)
        at.text_input(key="sign_in_password").set_value(PASSWORD)
        at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()
        at.switch_page("pages/items.py").run()
        assert not at.exception, at.exception
        at.selectbox(key="items_project").set_value(PROJECT).run()
        for key, value in filters:  # one more filter each time: fewer items match
            at.selectbox(key=key).set_value(value)
            elapsed = _timed_run(at)
            if rounds:  # the first round warms the engine, the imports and the database's pages
                filter_runs.append(elapsed)
        for page in (2, 3, 10, 4) if rounds % 2 else (2, 5, 3, 1):
            at.pagination(key="items_page").set_value(page)
            elapsed = _timed_run(at)
            shown = [c.value for c in at.caption if "items match" in c.value]
            assert shown and f"page {page} of" in shown[0], f"page {page} was not shown: {shown}"
            if rounds:
                page_runs.append(elapsed)
        for key, _ in filters:  # back to every item for the next round
            at.selectbox(key=key).set_value("all").run()
        rounds += 1
    return [("page: run after setting a filter", filter_runs), ("page: run after moving to another page", page_runs)]


def _timed_run(at: Any) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception, at.exception
    return elapsed


# --- main ------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(label: str, values: list[float], target_ms: float | None) -> str:
    p50, p95 = 1000 * statistics.median(values), 1000 * percentile(values, 0.95)
    verdict = "" if target_ms is None else ("ok" if p95 <= target_ms else "MISSED")
    goal = "" if target_ms is None else f"<= {target_ms:g}"
    return f"{label:<56}{len(values):>5}{p50:>9.1f}{p95:>9.1f}{goal:>9}  {verdict}"


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20, help="duplicate checks timed (default 20)")
    parser.add_argument("--page-runs", type=int, default=30, help="page moves timed (default 30)")
    parser.add_argument("--no-page", action="store_true", help="skip the Items page timings")
    parser.add_argument(
        "--database", type=Path, help="keep the database in this file: built when missing, used as it is when there"
    )
    args = parser.parse_args(argv)
    sources = Sources()
    with tempfile.TemporaryDirectory(prefix="medreview-items-") as tmp:
        path = args.database or Path(tmp) / "bench.db"
        if path.exists():
            facts = stored_facts(path)
            print(f"database: {facts['items']:,} items in {path} (built before)")
        else:
            facts = build_database(path, sources, random.Random(11))
            print(
                f"database: {facts['items']:,} items ({facts['criteria']:,} criteria) in '{PROJECT}' (40,000) and the "
                f"reference set '{REFERENCE}' (10,000), built through the importer in {facts['build_s']:.1f} s "
                f"(imports {', '.join(f'{s:.1f}' for s in facts['import_s'])} s, each with its duplicate check); "
                f"{facts['near_duplicates']} near-duplicates flagged"
            )
        load_before = os.getloadavg()
        timings = check_timings(path, facts["project_id"], facts["stored_mcq"], sources, args.runs)
        load_after = os.getloadavg()
        print(f"load average (1, 5, 15 min): {_load(load_before)} before the checks, {_load(load_after)} after")
        print(f"\n{'milliseconds':<56}{'runs':>5}{'p50':>9}{'p95':>9}{'target':>9}")
        for label, seconds, _ in timings:
            print(line(label, seconds, TARGET_CHECK_MS))
        for label, _, found in timings:
            print(f"  {label}: matches found: near-copies {found[0::2]}; new compositions {found[1::2]}")
        if not args.no_page:
            for label, values in page_timings(path, args.page_runs):
                print(line(label, values, TARGET_PAGE_P95_MS))
        print(f"targets: Items page p95 <= {TARGET_PAGE_P95_MS:g} ms; one duplicate check <= {TARGET_CHECK_MS:g} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The `medreview` command line: the same use cases as the pages, for scripts and pipelines.

Exit codes: 0 success, 1 invalid input (errors on stderr name the file, line and field; nothing
is written), 2 usage error. `--json` prints one machine-readable object on stdout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from review import (
    accounts,
    agreement_report,
    demo,
    duplicates,
    endpoints,
    export_files,
    generation,
    importing,
    judge,
    judging,
    label_import,
    llm,
    progress,
    runs,
)
from review.duplicates import DuplicateError
from review.endpoints import EndpointError
from review.exports import ExportError
from review.formats import MAX_FILE_BYTES, InvalidInput, Problem, check_size
from review.judging import JudgeConfigError
from review.label_formats import LABEL_FORMATS, LABELS_FORMAT, META_FORMAT, detect_label_format
from review.runs import RunError
from review.setup import prepare_database
from review.training_exports import TrainingExportError
from storage.db import database_url, make_engine, read_session, write_session

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _max_bytes() -> int:
    megabytes = os.environ.get("MEDREVIEW_MAX_IMPORT_MB")
    if not megabytes:
        return MAX_FILE_BYTES
    try:
        return round(float(megabytes) * 1024 * 1024)
    except ValueError:
        raise InvalidInput(
            [Problem("MEDREVIEW_MAX_IMPORT_MB", None, None, f"must be a number of MiB, not {megabytes!r}")]
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every command. Read-only."""
    parser = _Parser(prog="medreview", description="Physician grading of medical LLM answers.")
    parser.add_argument(
        "--database-url",
        help="database URL (default: MEDREVIEW_DATABASE_URL or sqlite:///data/medreview.db)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = commands.add_parser("init", help="create or upgrade the database")
    init.add_argument("--json", action="store_true")

    demo_cmd = commands.add_parser("demo", help="load the demo project and demo users")
    demo_cmd.add_argument("--if-empty", action="store_true", help="only when the database is empty")
    demo_cmd.add_argument("--json", action="store_true")

    users_cmd = commands.add_parser("users", help="manage accounts")
    users_sub = users_cmd.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    add = users_sub.add_parser("add", help="add an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=accounts.ROLES)
    add.add_argument("--specialty", action="append", default=[], help="repeat for several")
    add.add_argument("--display-name", default="")
    add.add_argument("--email")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--no-password", action="store_true", help="no local password (OIDC or proxy sign-in)")
    add.add_argument("--json", action="store_true")
    users_list = users_sub.add_parser("list", help="list accounts")
    users_list.add_argument("--json", action="store_true")

    imp = commands.add_parser(
        "import", help="import items, or labels (HealthBench meta-eval rows, medreview labels JSONL), from a file"
    )
    imp.add_argument("path")
    imp.add_argument("--project", required=True)
    imp.add_argument("--format", default="auto", choices=("auto", "healthbench", "medqa", "csv", *LABEL_FORMATS))
    imp.add_argument("--status", choices=("draft", "approved"), help="status of the new items (default: draft)")
    imp.add_argument("--with-reference-answers", action="store_true")
    imp.add_argument("--on-conflict", default="error", choices=importing.ON_CONFLICT)
    imp.add_argument("--json", action="store_true")

    answers = commands.add_parser("answers", help="model answers")
    answers_sub = answers.add_subparsers(dest="answers_command", required=True, parser_class=_Parser)
    ans_imp = answers_sub.add_parser("import", help="import answers (JSONL: external_id, model, answer)")
    ans_imp.add_argument("path")
    ans_imp.add_argument("--project", required=True)
    ans_imp.add_argument("--json", action="store_true")
    generate = answers_sub.add_parser("generate", help="generate answers for the project's approved items")
    generate.add_argument("--project", required=True)
    generate.add_argument("--endpoint", required=True, help="endpoint name (see `endpoints add`)")
    generate.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    generate.add_argument(
        "--shuffle-seed", type=int, help="show multiple-choice options in an order drawn from this seed (order bias)"
    )
    generate.add_argument("--json", action="store_true")

    endpoints_cmd = commands.add_parser("endpoints", help="OpenAI-compatible LLM endpoints")
    endpoints_sub = endpoints_cmd.add_subparsers(dest="endpoints_command", required=True, parser_class=_Parser)
    ep_add = endpoints_sub.add_parser("add", help="add an endpoint")
    ep_add.add_argument("name")
    ep_add.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    ep_add.add_argument("--model", required=True)
    ep_add.add_argument("--api-key-env", help="NAME of the environment variable or secret holding the key")
    ep_add.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="temperature, top_p, max_tokens or seed"
    )
    ep_add.add_argument("--json", action="store_true")
    ep_list = endpoints_sub.add_parser("list", help="list endpoints")
    ep_list.add_argument("--json", action="store_true")
    ep_test = endpoints_sub.add_parser("test", help="send one short request to an endpoint")
    ep_test.add_argument("name")
    ep_test.add_argument("--json", action="store_true")

    judge_cmd = commands.add_parser("judge", help="the LLM judge")
    judge_sub = judge_cmd.add_subparsers(dest="judge_command", required=True, parser_class=_Parser)
    judge_run = judge_sub.add_parser("run", help="grade the project's answers criterion by criterion")
    judge_run.add_argument("--project", required=True)
    judge_run.add_argument("--endpoint", required=True)
    judge_run.add_argument("--config", help="judge configuration name (default: the endpoint's name)")
    judge_run.add_argument("--template", help="a prompt template file (default: medreview's grader prompt)")
    judge_run.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="temperature, top_p, max_tokens or seed"
    )
    judge_run.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    judge_run.add_argument("--json", action="store_true")

    export_cmd = commands.add_parser(
        "export", help="export gold labels, items, meta-eval rows, training data, a data card"
    )
    export_cmd.add_argument("kind", choices=export_files.KINDS)
    export_cmd.add_argument("--project", required=True)
    export_cmd.add_argument("-o", "--output", required=True, help="the file to write (judge-sft: NAME.<split>.jsonl)")
    export_cmd.add_argument(
        "--format", default="jsonl", choices=("jsonl", "csv", "parquet"), help="gold only: csv, parquet"
    )
    export_cmd.add_argument("--names", action="store_true", help="gold: rater usernames instead of pseudonyms")
    export_cmd.add_argument("--judge-config", type=int, help="judge-sft: the judge configuration whose prompt is used")
    export_cmd.add_argument("--seed", type=int, default=0, help="judge-sft: the seed of the split by item")
    export_cmd.add_argument("--split", default="0.8,0.1,0.1", help="judge-sft: train,validation,test fractions")
    export_cmd.add_argument("--form", default="trl", choices=("trl", "openai"), help="preferences: TRL's or OpenAI's")
    export_cmd.add_argument("--json", action="store_true")

    dup = commands.add_parser(
        "duplicates", help="check a project's items for near-duplicates and copies of reference sets; list open flags"
    )
    dup.add_argument("--project", required=True)
    dup.add_argument("--threshold", help="set the project's threshold first: estimated Jaccard, more than 0, at most 1")
    reference = dup.add_mutually_exclusive_group()
    reference.add_argument(
        "--reference",
        dest="reference",
        action="store_const",
        const=True,
        help="make the project a reference set (other projects' copies of its items are flagged)",
    )
    reference.add_argument("--no-reference", dest="reference", action="store_const", const=False)
    dup.add_argument("--json", action="store_true")

    stats = commands.add_parser("stats", help="counts for a project")
    stats.add_argument("--project", required=True)
    stats.add_argument("--json", action="store_true")
    return parser


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True, default=str))
    else:
        print(text)


def _read_file(path_text: str) -> tuple[bytes, str]:
    path = Path(path_text)
    if not path.is_file():
        raise InvalidInput([Problem(path_text, None, None, "no such file")])
    check_size(path.stat().st_size, path_text, _max_bytes())
    return path.read_bytes(), path_text


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "users_command", None) == "add" and args.password_stdin and args.no_password:
        print("error: --password-stdin and --no-password exclude each other", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "import" and (misuse := _label_import_misuse(args, args.format)):
        print(f"error: {misuse}", file=sys.stderr)
        return EXIT_USAGE
    url = args.database_url or database_url()
    engine = make_engine(url)
    try:
        return _dispatch(args, engine)
    except InvalidInput as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "errors": [str(p) for p in exc.problems]}))
        return EXIT_INVALID
    except (
        accounts.AccountError,
        EndpointError,
        JudgeConfigError,
        RunError,
        llm.LLMError,
        ExportError,
        TrainingExportError,
        DuplicateError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "errors": [str(exc)]}))
        return EXIT_INVALID
    finally:
        engine.dispose()


def _dispatch(args: argparse.Namespace, engine: Any) -> int:
    if args.command == "init":
        revision = prepare_database(engine)
        shown = engine.url.render_as_string(hide_password=True)
        _emit(
            args,
            {"ok": True, "revision": revision, "database": shown},
            f"database {shown} at revision {revision}",
        )
        return EXIT_OK

    prepare_database(engine)
    if args.command == "demo":
        with write_session(engine) as session:
            if args.if_empty and not demo.database_is_empty(session):
                _emit(args, {"ok": True, "loaded": False}, "database not empty; demo not loaded")
                return EXIT_OK
            loaded = demo.load_demo(session)
        payload = {"ok": True, "loaded": True, **loaded.as_dict()}
        _emit(
            args,
            payload,
            f"demo project {loaded.project!r}: {loaded.items_added} items added, "
            f"{loaded.answers_added} answers added, users added: {', '.join(loaded.users_added) or 'none'}",
        )
        return EXIT_OK

    if args.command == "users":
        return _users(args, engine)

    if args.command == "import":
        data, name = _read_file(args.path)
        fmt = args.format if args.format != "auto" else (detect_label_format(data) or "auto")
        if fmt in LABEL_FORMATS:
            return _import_labels(args, engine, data, name, fmt)
        with write_session(engine) as session:
            report = importing.import_items(
                session,
                project_name=args.project,
                data=data,
                filename=name,
                fmt=fmt,
                status=args.status or "draft",
                with_reference_answers=args.with_reference_answers,
                on_conflict=args.on_conflict,
                max_bytes=_max_bytes(),
            )
        _emit(
            args,
            {"ok": True, **report.as_dict()},
            f"{name}: {report.items_added} items added, {report.items_unchanged} unchanged, "
            f"{report.items_new_version} new versions, {report.items_skipped} skipped, "
            f"{report.criteria_added} criteria, {report.answers_added} answers added"
            + _duplicate_lines(report.near_duplicates, report.duplicates, args.project),
        )
        return EXIT_OK

    if args.command == "duplicates":
        return _duplicates(args, engine)

    if args.command == "export":
        return _export(args, engine)
    if args.command == "endpoints":
        return _endpoints(args, engine)
    if args.command == "judge":
        return _judge(args, engine)
    if args.command == "answers" and args.answers_command == "generate":
        return _generate(args, engine)
    if args.command == "answers":
        data, name = _read_file(args.path)
        with write_session(engine) as session:
            answers = importing.import_answers(
                session, project_name=args.project, data=data, filename=name, max_bytes=_max_bytes()
            )
        _emit(
            args,
            {"ok": True, **answers.as_dict()},
            f"{name}: {answers.answers_added} answers added, {answers.answers_unchanged} unchanged",
        )
        return EXIT_OK

    if args.command == "stats":
        with read_session(engine) as session:
            stats = progress.project_stats(session, project_name=args.project)
        shown_apart = ("agreement", "judge", "mcq_accuracy", "mcq_order_bias")
        lines = [f"{key}: {value}" for key, value in stats.items() if key not in shown_apart]
        lines.append("agreement: " + agreement_report.overall_line(stats["agreement"]["overall"]))
        lines.extend(_mcq_lines(stats.get("mcq_accuracy", [])))
        lines.extend(_judge_lines(stats.get("judge", {})))
        _emit(args, {"ok": True, **stats}, "\n".join(lines))
        return EXIT_OK
    return EXIT_USAGE


def _duplicate_lines(count: int, listed: Sequence[dict[str, Any]], project: str, shown: int = 10) -> str:
    """The import's near-duplicates as extra lines of text (nothing when there are none)."""
    if not count:
        return ""
    lines = [f"\n{count} near-duplicates flagged (new item, similarity, the item it nearly copies):"]
    lines += [
        f"  {d['external_id']}  {d['similarity']:.2f}  {d['match_external_id']} ({d['match_project']}, {d['scope']})"
        for d in listed[:shown]
    ]
    if count > shown:
        lines.append(f"  … and {count - shown} more: medreview duplicates --project {project!r}")
    return "\n".join(lines)


def _duplicates(args: argparse.Namespace, engine: Any) -> int:
    """`duplicates --project P [--threshold T] [--reference | --no-reference]`: scan, then list open flags."""
    threshold = None if args.threshold is None else duplicates.check_threshold(args.threshold)
    with write_session(engine) as session:
        project_id = _project_id(session, args.project)
        if threshold is not None:
            duplicates.set_threshold(session, project_id=project_id, threshold=threshold, actor_id=None)
        if args.reference is not None:
            duplicates.set_reference(
                session, project_id=project_id, is_reference=args.reference, actor_id=None, scan=False
            )
        scan = duplicates.scan_project(session, project_id=project_id)
        flags = duplicates.project_flags(session, project_id=project_id, status="open")
    lines = [
        f"{scan.project}: {scan.items} items checked ({scan.signed} signed now, {scan.without_text} too short to "
        f"compare), threshold {scan.threshold:.2f}; {scan.flags_added} new flags, {len(flags)} open"
    ]
    lines += [
        f"  {f.item_external_id}  {f.similarity:.2f}  {f.match_external_id} ({f.match_project}, {f.scope})"
        for f in flags
    ]
    payload = {"ok": True, **asdict(scan), "flags": [asdict(f) for f in flags]}
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK


def _label_import_misuse(args: argparse.Namespace, fmt: str) -> str | None:
    """Why these `import` options do not fit a label file, or None."""
    if fmt not in LABEL_FORMATS:
        return None
    if args.with_reference_answers:
        return f"--with-reference-answers is for item files, not --format {fmt}"
    if args.on_conflict != "error":
        return f"--on-conflict is for item files; --format {fmt} never changes stored items"
    if fmt == LABELS_FORMAT and args.status is not None:
        return "--status is for new items; --format labels adds labels to items already in the project"
    return None


def _import_labels(args: argparse.Namespace, engine: Any, data: bytes, name: str, fmt: str) -> int:
    """`import --format healthbench-meta | labels` (or a label file recognised by its first row)."""
    if misuse := _label_import_misuse(args, fmt):
        print(f"error: {misuse}", file=sys.stderr)
        return EXIT_USAGE
    with write_session(engine) as session:
        if fmt == META_FORMAT:
            report = label_import.import_meta_eval(
                session,
                project_name=args.project,
                data=data,
                filename=name,
                status=args.status or "draft",
                max_bytes=_max_bytes(),
            )
        else:
            report = label_import.import_labels(
                session, project_name=args.project, data=data, filename=name, max_bytes=_max_bytes()
            )
    _emit(
        args,
        {"ok": True, **report.as_dict()},
        f"{name}: {report.items_added} items added, {report.criteria_added} criteria, "
        f"{report.answers_added} answers added, {report.raters_added} raters added, "
        f"{report.labels_added} labels added, {report.unchanged} labels unchanged",
    )
    return EXIT_OK


def _users(args: argparse.Namespace, engine: Any) -> int:
    if args.users_command == "list":
        from storage import users as user_rows

        with read_session(engine) as session:
            rows: list[dict[str, Any]] = [
                {
                    "username": u.username,
                    "role": u.role,
                    "specialties": u.specialties,
                    "active": u.active,
                    "kind": u.kind,
                }
                for u in user_rows.list_users(session=session)
            ]
        _emit(
            args,
            {"ok": True, "users": rows},
            "\n".join(f"{r['username']}\t{r['role']}\t{', '.join(r['specialties'])}" for r in rows),
        )
        return EXIT_OK

    password: str | None
    if args.no_password:
        password = None
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("error: password: the two entries differ", file=sys.stderr)
            return EXIT_INVALID
    else:
        print("error: give --password-stdin or --no-password", file=sys.stderr)
        return EXIT_USAGE
    with write_session(engine) as session:
        user = accounts.create_user(
            session,
            username=args.username,
            role=args.role,
            password=password,
            specialties=args.specialty,
            display_name=args.display_name,
            email=args.email,
        )
    _emit(
        args,
        {"ok": True, "username": user.username, "role": user.role, "specialties": list(user.specialties)},
        f"added {user.username} ({user.role})",
    )
    return EXIT_OK


def _params(pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EndpointError(f"--param {pair!r}: write KEY=VALUE, e.g. temperature=0")
        params[key.strip()] = value.strip()
    return endpoints.check_params(params)


def _endpoints(args: argparse.Namespace, engine: Any) -> int:
    if args.endpoints_command == "add":
        with write_session(engine) as session:
            added = endpoints.add_endpoint(
                session,
                name=args.name,
                base_url=args.base_url,
                model=args.model,
                api_key_env=args.api_key_env,
                params=_params(args.param),
            )
        payload = {
            "name": added.name,
            "base_url": added.base_url,
            "model": added.model,
            "api_key_env": added.api_key_env,
        }
        _emit(args, {"ok": True, **payload}, f"added endpoint {added.name} ({added.model} at {added.base_url})")
        return EXIT_OK
    with read_session(engine) as session:
        rows = endpoints.list_endpoints(session)
        chosen = endpoints.find_endpoint(session, name=args.name) if args.endpoints_command == "test" else None
    if chosen is None:
        listed = [
            {"name": r.name, "base_url": r.base_url, "model": r.model, "api_key_env": r.api_key_env, "params": r.params}
            for r in rows
        ]
        _emit(args, {"ok": True, "endpoints": listed}, "\n".join(f"{r.name}\t{r.model}\t{r.base_url}" for r in rows))
        return EXIT_OK
    check = endpoints.check_connection(endpoints.spec_of(chosen))
    _emit(args, {"ok": check.ok, "message": check.message, "latency_ms": check.latency_ms}, check.message)
    return EXIT_OK if check.ok else EXIT_INVALID


def _project_id(session: Any, name: str) -> int:
    from storage import projects

    project = projects.get_project_by_name(session=session, name=name)
    if project is None or project.id is None:
        raise InvalidInput([Problem("--project", None, None, f"there is no project named {name!r}")])
    return project.id


def _progress_printer(args: argparse.Namespace) -> None:
    if not getattr(args, "json", False):
        print("working… (Ctrl+C stops; run the same command again to resume)", file=sys.stderr)


def _run_outcome(args: argparse.Namespace, done: runs.RunReport, noun: str) -> int:
    failures = "".join(f"\n  failed: {f['reason']}" for f in done.failures[:20])
    text = (
        f"run {done.run_id} {done.status}: {done.done} of {done.total} {noun} done, {done.failed} failed, "
        f"{done.prompt_tokens} prompt and {done.completion_tokens} completion tokens" + failures
    )
    if done.error:
        text += f"\n{done.error}"
    _emit(args, {"ok": done.status == "finished", **done.as_dict()}, text)
    return EXIT_OK if done.status == "finished" else EXIT_INVALID


def _execute(args: argparse.Namespace, execute: Any, engine: Any, run_id: int, noun: str) -> int:
    _progress_printer(args)
    try:
        done = execute(engine, run_id)
    except KeyboardInterrupt:
        print(f"stopped run {run_id}; run the same command again to resume", file=sys.stderr)
        return 130
    return _run_outcome(args, done, noun)


def _generate(args: argparse.Namespace, engine: Any) -> int:
    with write_session(engine) as session:
        project_id = _project_id(session, args.project)
        endpoint = endpoints.find_endpoint(session, name=args.endpoint)
        run_id = generation.start_generation(
            session,
            project_id=project_id,
            endpoint_id=int(endpoint.id or 0),
            concurrency=args.concurrency,
            shuffle_seed=args.shuffle_seed,
        )
    return _execute(args, generation.execute_generation, engine, run_id, "items")


def _judge(args: argparse.Namespace, engine: Any) -> int:
    template = judge.DEFAULT_TEMPLATE
    if args.template:
        data, _ = _read_file(args.template)
        template = data.decode("utf-8", errors="replace")
    with write_session(engine) as session:
        project_id = _project_id(session, args.project)
        endpoint = endpoints.find_endpoint(session, name=args.endpoint)
        config = judging.save_judge_config(
            session,
            name=args.config or endpoint.name,
            endpoint_id=int(endpoint.id or 0),
            template=template,
            params={**judge.DEFAULT_PARAMS, **_params(args.param)},
        )
        run_id = judging.start_judge_run(
            session, project_id=project_id, config_id=int(config.id or 0), concurrency=args.concurrency
        )
    return _execute(args, judging.execute_judge_run, engine, run_id, "units")


def _figure(value: Any) -> str:
    if isinstance(value, dict):
        return "undefined" if value.get("value") is None else f"{value['value']:.3f}"
    return "undefined" if value is None else f"{value:.3f}"


def _judge_lines(judged: dict[str, Any]) -> list[str]:
    lines = []
    for config in judged.get("configs", []):
        gold = config["vs_gold"]
        lines.append(
            f"judge {config['config']}@v{config['version']} ({config['model']}): {config['labels']} labels; vs gold "
            f"accuracy {_figure(gold['accuracy'])}, balanced F1 {_figure(gold['balanced_f1'])}, kappa "
            f"{_figure(gold['cohen_kappa'])}; vs physicians pairwise F1 "
            f"{_figure(config['vs_physicians']['pairwise_f1'])}"
        )
    if lines:
        ceiling = judged.get("physician_ceiling", {}).get("pairwise_f1")
        lines.append(f"physicians vs other physicians pairwise F1 {_figure(ceiling)}")
    return lines


def _export(args: argparse.Namespace, engine: Any) -> int:
    try:
        split = tuple(float(part) for part in args.split.split(","))
    except ValueError:
        split = ()
    if len(split) != 3:
        raise ExportError(f"--split {args.split!r}: give three fractions, e.g. 0.8,0.1,0.1")
    options = export_files.ExportOptions(
        fmt=args.format,
        pseudonymize=not args.names,
        judge_config_id=args.judge_config,
        seed=args.seed,
        split=(split[0], split[1], split[2]),
        form=args.form,
    )
    with read_session(engine) as session:
        done = export_files.write_export(
            session, kind=args.kind, project_name=args.project, path=Path(args.output), options=options
        )
    text = "\n".join(f"wrote {rows} rows to {path}" for path, rows in done.files.items())
    if done.counts:
        text += "\n" + ", ".join(f"{key}: {value}" for key, value in done.counts.items())
    _emit(args, {"ok": True, **done.as_dict()}, text)
    return EXIT_OK


def _mcq_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"mcq accuracy {row['model']} ({row['order']}): {row['correct']}/{row['answers']}"
        + (f" = {row['accuracy']:.3f}" if row["accuracy"] is not None else "")
        for row in rows
    ]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

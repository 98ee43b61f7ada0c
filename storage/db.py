"""The engine factory and the session helpers: the one place that knows about connections.

SQLite gets WAL, a busy timeout, foreign keys, and write transactions begun IMMEDIATE (so two
writers queue on the lock instead of failing half-way). PostgreSQL gets a plain pooled engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["Engine", "database_url", "make_engine", "read_session", "write_session"]
from sqlmodel import Session, create_engine

DEFAULT_DATABASE_URL = "sqlite:///data/medreview.db"
BUSY_TIMEOUT_MS = 30_000
_WRITE = "medreview_write"


def database_url(env: Mapping[str, str] | None = None) -> str:
    """Return the database URL from MEDREVIEW_DATABASE_URL, or the default SQLite file. Read-only."""
    source: Mapping[str, str] = os.environ if env is None else env
    return source.get("MEDREVIEW_DATABASE_URL") or DEFAULT_DATABASE_URL


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Build an engine for the URL (default: database_url()); creates the SQLite folder."""
    url = url or database_url()
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url, echo=echo)
    return create_engine(url, echo=echo, pool_pre_ping=True, json_serializer=_dumps)


def _dumps(value: Any) -> str:
    # JSON columns: UTF-8 text (searchable, not \\u escapes), encoded fast (imports write many rows)
    return orjson.dumps(value).decode("utf-8")


def _make_sqlite_engine(url: str, *, echo: bool) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=_dumps,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """Open a session for reading; it is closed (never committed) at the end."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """Open a session whose transaction takes the write lock first; commits on success."""
    with Session(engine.execution_options(**{_WRITE: True}), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

"""Storage: migrations match the tables, SQLite settings, write transactions, foreign keys."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, func, select

from storage import migrate
from storage.db import DEFAULT_DATABASE_URL, database_url, make_engine, read_session, write_session
from storage.models import AuditEvent, Criterion, Project, User


def test_migrations_create_exactly_the_model_tables(engine):
    """Test that the Alembic migrations build the same schema the SQLModel tables describe."""
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_upgrade_is_idempotent_and_reports_head(engine):
    """Test that upgrading twice leaves the database at the head revision."""
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert migrate.upgrade(engine) == migrate.head_revision()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(engine):
    """Test that every SQLite connection has WAL, a busy timeout and foreign keys on."""
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_foreign_keys_are_enforced(engine):
    """Test that a criterion pointing at a missing item is refused."""
    with pytest.raises(IntegrityError):
        with write_session(engine) as session:
            session.add(Criterion(item_id=999_999, text="x", points=1))
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(Criterion)).one() == 0


def test_write_session_begins_immediate(engine):
    """Test that a write session takes the write lock at BEGIN (BEGIN IMMEDIATE)."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", record)
    try:
        with write_session(engine) as session:
            session.add(Project(name="p"))
        with read_session(engine) as session:
            session.exec(select(Project)).all()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert "BEGIN IMMEDIATE" in statements
    assert statements.count("BEGIN") == 1  # the read


def test_concurrent_writers_queue_instead_of_failing(engine):
    """Test that 16 threads writing at once all succeed (no 'database is locked')."""
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(10):
                with write_session(engine) as session:
                    count = session.exec(select(func.count()).select_from(AuditEvent)).one()
                    session.add(AuditEvent(action="t", entity="test", entity_id=n * 100 + k, detail={"seen": count}))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with read_session(engine) as session:
        rows = session.exec(select(AuditEvent)).all()
    assert len(rows) == 160
    # read-then-write inside IMMEDIATE transactions is serialised: every count seen is distinct
    assert len({row.detail["seen"] for row in rows}) == 160


def test_write_session_rolls_back_on_error(engine):
    """Test that an exception inside a write session leaves nothing written."""
    with pytest.raises(RuntimeError):
        with write_session(engine) as session:
            session.add(User(username="ghost"))
            session.flush()
            raise RuntimeError("boom")
    with read_session(engine) as session:
        assert session.exec(select(User).where(User.username == "ghost")).first() is None


def test_database_url_defaults_to_sqlite_file_under_data():
    """Test that without MEDREVIEW_DATABASE_URL the database is a SQLite file under ./data/."""
    assert database_url({}) == DEFAULT_DATABASE_URL == "sqlite:///data/medreview.db"
    assert database_url({"MEDREVIEW_DATABASE_URL": "postgresql://x/y"}) == "postgresql://x/y"


def test_make_engine_creates_the_folder(tmp_path):
    """Test that the SQLite folder is created when missing."""
    target = tmp_path / "deep" / "er" / "m.db"
    engine = make_engine(f"sqlite:///{target}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    assert target.exists()


def test_json_columns_keep_unicode_readable(engine):
    """Test that JSON columns store non-ASCII text as UTF-8 (searchable), not \\u escapes."""
    with write_session(engine) as session:
        session.add(User(username="u1", specialties=["Pädiatrie"]))
    with engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT specialties FROM user WHERE username='u1'").scalar()
    assert raw == '["Pädiatrie"]'

"""Use case: bring a database up to date (migrations, default taxonomy). Used by the app and `init`."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from review.taxonomy import DEFAULT_SPECIALTIES
from storage import migrate, users
from storage.db import write_session


def prepare_database(engine: Engine) -> str | None:
    """Upgrade the schema to the newest revision and seed the specialty taxonomy. Commits."""
    revision = migrate.upgrade(engine)
    with write_session(engine) as session:
        if not users.list_specialties(session=session, active_only=False):
            users.add_specialties(session=session, names=DEFAULT_SPECIALTIES)
    return revision

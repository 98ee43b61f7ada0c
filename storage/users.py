"""Repository functions for users and the specialty taxonomy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.models import Item, Specialty, User, utcnow


def count_users(*, session: Session, can_sign_in: bool | None = None) -> int:
    """Count users (optionally only those who can sign in). Read-only."""
    query = select(func.count()).select_from(User)
    if can_sign_in is not None:
        query = query.where(User.can_sign_in == can_sign_in)
    return int(session.exec(query).one())


def count_admins(*, session: Session) -> int:
    """Count active admins who can sign in. Read-only."""
    query = (
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active == True, User.can_sign_in == True)  # noqa: E712
    )
    return int(session.exec(query).one())


def get_user(*, session: Session, user_id: int) -> User | None:
    """Return the user with this id, or None. Read-only."""
    return session.get(User, user_id)


def get_user_by_username(*, session: Session, username: str) -> User | None:
    """Return the user with this username (case-insensitive), or None. Read-only."""
    query = select(User).where(func.lower(User.username) == username.strip().lower())
    return session.exec(query).first()


def get_user_by_email(*, session: Session, email: str) -> User | None:
    """Return the user with this email (case-insensitive), or None. Read-only."""
    query = select(User).where(func.lower(User.email) == email.strip().lower())
    return session.exec(query).first()


def list_users(*, session: Session, include_raters: bool = False) -> Sequence[User]:
    """List users by username; imported and judge raters only when asked. Read-only."""
    query = select(User).order_by(col(User.username))
    if not include_raters:
        query = query.where(User.kind == "human")
    return session.exec(query).all()


def add_user(
    *,
    session: Session,
    username: str,
    role: str,
    password_hash: str | None,
    display_name: str = "",
    email: str | None = None,
    specialties: list[str] | None = None,
    kind: str = "human",
    can_sign_in: bool = True,
) -> User:
    """Insert a user and flush to get its id."""
    user = User(
        username=username,
        role=role,
        password_hash=password_hash,
        display_name=display_name or username,
        email=email,
        specialties=list(specialties or []),
        kind=kind,
        can_sign_in=can_sign_in,
    )
    session.add(user)
    session.flush()
    return user


def update_user(*, session: Session, user_id: int, **changes: Any) -> User:
    """Change fields of a user (role, specialties, active, display_name, password_hash...)."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    for name, value in changes.items():
        setattr(user, name, list(value) if name == "specialties" else value)
    session.add(user)
    session.flush()
    return user


def record_sign_in(*, session: Session, user_id: int, at: datetime | None = None) -> None:
    """Stamp the user's last sign-in time."""
    user = session.get(User, user_id)
    if user is not None:
        user.last_sign_in_at = at or utcnow()
        session.add(user)


def list_specialties(*, session: Session, active_only: bool = True) -> list[str]:
    """Return the specialty taxonomy in its order. Read-only."""
    query = select(Specialty.name).order_by(col(Specialty.position), col(Specialty.name))
    if active_only:
        query = query.where(Specialty.active == True)  # noqa: E712
    return list(session.exec(query).all())


def add_specialties(*, session: Session, names: Sequence[str]) -> int:
    """Add specialties not yet in the taxonomy (compared ignoring case), at the end, active; return how many
    were added. Flushes."""
    existing = {name.casefold() for name in session.exec(select(Specialty.name)).all()}
    position = _next_position(session)
    added = 0
    for name in names:
        if name and name.casefold() not in existing:
            session.add(Specialty(name=name, position=position))
            existing.add(name.casefold())
            position += 1
            added += 1
    session.flush()
    return added


def _next_position(session: Session) -> int:
    last = session.exec(select(func.max(Specialty.position))).one()
    return 0 if last is None else int(last) + 1


def list_specialty_rows(*, session: Session) -> Sequence[Specialty]:
    """Every specialty, active or not, in the taxonomy's order. Read-only."""
    return session.exec(select(Specialty).order_by(col(Specialty.position), col(Specialty.name))).all()


def get_specialty(*, session: Session, specialty_id: int) -> Specialty | None:
    """Return the specialty with this id, or None. Read-only."""
    return session.get(Specialty, specialty_id)


def add_specialty(*, session: Session, name: str) -> Specialty:
    """Insert one active specialty at the end of the taxonomy. Flushes."""
    specialty = Specialty(name=name, position=_next_position(session), active=True)
    session.add(specialty)
    session.flush()
    return specialty


def update_specialty(*, session: Session, specialty_id: int, **changes: Any) -> Specialty:
    """Change fields of a specialty (name, active). Flushes."""
    specialty = session.get(Specialty, specialty_id)
    if specialty is None:
        raise LookupError(f"no specialty with id {specialty_id}")
    for name, value in changes.items():
        setattr(specialty, name, value)
    session.add(specialty)
    session.flush()
    return specialty


def set_specialty_order(*, session: Session, specialty_ids: Sequence[int]) -> None:
    """Number the specialties 0, 1, 2... in the order given (others keep their position). Flushes."""
    for position, specialty_id in enumerate(specialty_ids):
        session.execute(update(Specialty).where(col(Specialty.id) == specialty_id).values(position=position))
    session.flush()


SPECIALTY_HOLDERS: dict[str, type[User] | type[Item]] = {"user": User, "item": Item}


def specialty_lists_holding(*, session: Session, name: str, holder: str) -> list[tuple[int, list[str]]]:
    """(id, specialties) of the users (holder "user") or item versions (holder "item", every version of every
    project) whose specialties list holds `name` exactly, by id. Read-only."""
    table = SPECIALTY_HOLDERS[holder]
    # JSON lists are stored as UTF-8 text, so a name without quotes or backslashes appears as "name".
    needle = "%" + _like_escape(f'"{name}"') + "%"
    query = (
        sa_select(col(table.id), col(table.specialties))
        .where(cast(col(table.specialties), String).like(needle, escape="\\"))
        .order_by(col(table.id))
    )
    return [(int(row_id), list(names)) for row_id, names in session.execute(query).all() if name in (names or [])]


def set_specialty_lists(*, session: Session, holder: str, lists: Sequence[tuple[int, list[str]]]) -> int:
    """Store new specialties lists for users (holder "user") or item versions (holder "item"), by id; return how
    many rows were written. Flushes."""
    table = SPECIALTY_HOLDERS[holder]
    for row_id, names in lists:
        session.execute(update(table).where(col(table.id) == row_id).values(specialties=list(names)))
    session.flush()
    return len(lists)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

"""Repository functions for users and the specialty taxonomy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import Specialty, User, utcnow


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
    """Add specialties not yet in the taxonomy, at the end; return how many were added."""
    existing = set(session.exec(select(Specialty.name)).all())
    position = len(existing)
    added = 0
    for name in names:
        if name and name not in existing:
            session.add(Specialty(name=name, position=position))
            existing.add(name)
            position += 1
            added += 1
    session.flush()
    return added

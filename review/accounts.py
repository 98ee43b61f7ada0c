"""Accounts, roles and sign-in: local argon2 passwords, OIDC identities and a trusted proxy header.

Passwords are only ever hashed here; neither passwords nor hashes are logged or returned to
pages. Roles: `annotator` (a physician, with specialties), `curator`, `admin`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session

from review import taxonomy
from storage import audit, users

ROLES = ("annotator", "curator", "admin")
MIN_PASSWORD_LENGTH = 8
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,119}$")
_hasher = PasswordHasher()
# A valid hash to verify against when the user does not exist, so that timing does not tell.
_DUMMY_HASH = _hasher.hash("medreview-timing-equaliser")


class AccountError(ValueError):
    """A user-facing problem with an account request; the message names the field."""


@dataclass(frozen=True)
class SignedIn:
    """What a page keeps about the signed-in person: ids and names, no secrets."""

    user_id: int
    username: str
    display_name: str
    role: str
    specialties: tuple[str, ...] = field(default_factory=tuple)


def hash_password(password: str) -> str:
    """Return an argon2id hash of the password. Read-only."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password against its hash in constant-ish time. Read-only."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    """Raise AccountError when a new password is too weak to accept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise AccountError("password: must not start or end with spaces")


def _check_username(username: str) -> str:
    username = username.strip()
    if not USERNAME.match(username):
        raise AccountError(
            "username: 2-120 characters, letters, digits and . _ @ - only, starting with a letter or digit"
        )
    return username


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role: must be one of {', '.join(ROLES)}")
    return role


def signed_in(user: Any) -> SignedIn:
    """Make the session-safe view of a user row. Read-only."""
    return SignedIn(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        role=user.role,
        specialties=tuple(user.specialties or ()),
    )


def current_account(session: Session, *, user_id: int) -> SignedIn | None:
    """The signed-in person by id, or None once the account is gone, inactive or not for sign-in. Read-only."""
    user = users.get_user(session=session, user_id=user_id)
    if user is None or not user.active or not user.can_sign_in:
        return None
    return signed_in(user)


def needs_first_admin(session: Session) -> bool:
    """True while no one who can sign in as admin exists. Read-only."""
    return users.count_admins(session=session) == 0


def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    password: str | None,
    specialties: list[str] | None = None,
    display_name: str = "",
    email: str | None = None,
    actor_id: int | None = None,
) -> SignedIn:
    """Create a local account (password may be None for OIDC or proxy sign-in). Flushes."""
    username = _check_username(username)
    role = _check_role(role)
    password_hash = None
    if password is not None:
        check_password(password)
        password_hash = hash_password(password)  # before the first query: no lock held while hashing
    if users.get_user_by_username(session=session, username=username) is not None:
        raise AccountError(f"username: {username!r} is taken")
    user = users.add_user(
        session=session,
        username=username,
        role=role,
        password_hash=password_hash,
        display_name=display_name.strip(),
        email=(email or "").strip() or None,
        specialties=_as_in_taxonomy(session, specialties or []),
    )
    users.add_specialties(session=session, names=user.specialties)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="create",
        entity="user",
        entity_id=user.id,
        detail={"username": username, "role": role, "specialties": user.specialties},
    )
    return signed_in(user)


def create_first_admin(session: Session, *, username: str, password: str) -> SignedIn:
    """Create the first admin; refused once an admin exists. Flushes."""
    if not needs_first_admin(session):
        raise AccountError("an administrator already exists; sign in instead")
    return create_user(session, username=username, role="admin", password=password)


def authenticate(session: Session, *, username: str, password: str) -> SignedIn | None:
    """Return who signed in, or None for a wrong name or password (never says which). Commits.

    The password check (argon2, tens of milliseconds by design) runs between two short
    transactions, so a sign-in never holds the database's write lock while hashing.
    """
    user = users.get_user_by_username(session=session, username=username or "")
    who = signed_in(user) if user is not None else None
    password_hash = user.password_hash if user is not None else None
    allowed = user is not None and user.active and user.can_sign_in
    session.commit()
    ok = verify_password(password_hash, password or "")
    if who is None or not ok or not allowed:
        return None
    users.record_sign_in(session=session, user_id=who.user_id)
    return who


def update_account(
    session: Session,
    *,
    user_id: int,
    actor_id: int | None,
    role: str | None = None,
    specialties: list[str] | None = None,
    active: bool | None = None,
    display_name: str | None = None,
    new_password: str | None = None,
) -> SignedIn:
    """Change a user's role, specialties, status, name or password; audited. Flushes."""
    changes: dict[str, Any] = {}
    if role is not None:
        changes["role"] = _check_role(role)
    if specialties is not None:
        changes["specialties"] = _as_in_taxonomy(session, specialties)
    if active is not None:
        changes["active"] = active
    if display_name is not None:
        changes["display_name"] = display_name.strip()
    if new_password is not None:
        check_password(new_password)
        changes["password_hash"] = hash_password(new_password)  # before the first query: no lock held
    current = users.get_user(session=session, user_id=user_id)
    if current is None:
        raise AccountError(f"user: no user with id {user_id}")
    demoting = ("role" in changes and changes["role"] != "admin") or changes.get("active") is False
    if demoting and current.role == "admin" and users.count_admins(session=session) <= 1:
        raise AccountError("role: this is the last administrator; make someone else admin first")
    user = users.update_user(session=session, user_id=user_id, **changes)
    if "specialties" in changes:
        users.add_specialties(session=session, names=changes["specialties"])
    logged = {k: v for k, v in changes.items() if k != "password_hash"}
    if new_password is not None:
        logged["password"] = "changed"
    audit.add_audit_event(
        session=session, actor_id=actor_id, action="update", entity="user", entity_id=user_id, detail=logged
    )
    return signed_in(user)


# --- sign-in configured in .streamlit/secrets.toml -----------------------------------------------


@dataclass(frozen=True)
class AuthSettings:
    """How people sign in, from the [medreview.auth] table of secrets.toml.

    mode = "local" (default), "oidc" or "header". For "oidc", st.login(provider) authenticates
    and the identity's email (or username claim) is matched to an account. For "header", a
    proxy in front of the app authenticates and sends the username in `header`.
    """

    mode: str = "local"
    provider: str | None = None
    header: str = "X-Forwarded-User"
    auto_create: bool = False
    default_role: str = "annotator"
    allow_local: bool = True


def auth_settings(secrets: Mapping[str, Any] | None) -> AuthSettings:
    """Read AuthSettings from a secrets mapping; raise AccountError on a bad setting. Read-only."""
    table: Mapping[str, Any] = {}
    if secrets:
        medreview = secrets.get("medreview") or {}
        table = medreview.get("auth") or {}
    mode = str(table.get("mode", "local"))
    if mode not in ("local", "oidc", "header"):
        raise AccountError("secrets [medreview.auth] mode: must be local, oidc or header")
    default_role = _check_role(str(table.get("default_role", "annotator")))
    return AuthSettings(
        mode=mode,
        provider=table.get("provider"),
        header=str(table.get("header", "X-Forwarded-User")),
        auto_create=bool(table.get("auto_create", False)),
        default_role=default_role,
        allow_local=bool(table.get("allow_local", mode == "local")),
    )


def header_username(headers: Mapping[str, str] | None, settings: AuthSettings) -> str | None:
    """Return the username a trusted proxy sent, or None. Read-only."""
    if not headers or settings.mode != "header":
        return None
    wanted = settings.header.lower()
    for name, value in headers.items():
        if name.lower() == wanted and value and value.strip():
            return value.strip()
    return None


def sign_in_external(
    session: Session, *, username: str | None, email: str | None, settings: AuthSettings
) -> SignedIn | None:
    """Map an identity asserted by OIDC or a proxy to an active account (created if allowed)."""
    user = None
    if email:
        user = users.get_user_by_email(session=session, email=email)
    if user is None and username:
        user = users.get_user_by_username(session=session, username=username)
    if user is None and settings.auto_create:
        name = username or (email or "").split("@")[0]
        if not name:
            return None
        created = create_user(session, username=name, role=settings.default_role, password=None, email=email)
        user = users.get_user(session=session, user_id=created.user_id)
    if user is None or not user.active or not user.can_sign_in:
        return None
    assert user.id is not None
    users.record_sign_in(session=session, user_id=user.id)
    return signed_in(user)


def _as_in_taxonomy(session: Session, specialties: Sequence[str]) -> list[str]:
    """The specialties as the taxonomy spells them ("cardiology" → "Cardiology"), each once; names the taxonomy
    lacks are kept as given (they are added to it). Read-only."""
    known = users.list_specialties(session=session, active_only=False)
    spelled: list[str] = []
    for name in (" ".join(s.split()) for s in specialties):
        if name and taxonomy.taken_by(name, spelled) is None:
            spelled.append(taxonomy.taken_by(name, known) or name)
    return spelled

"""Accounts: argon2 passwords, sign-in, roles, external identities, nothing secret stored or logged."""

from __future__ import annotations

import json
import logging

import pytest
from sqlmodel import select

from review import accounts, administration
from review.access import may_import, may_open, screens_for
from review.accounts import AccountError
from review.administration import check_project_settings
from storage.db import read_session, write_session
from storage.models import AuditEvent, Project, User
from storage.users import list_specialties

PASSWORD = "correct horse battery"
THRESHOLD_MESSAGE = "duplicate_threshold: a number greater than 0 and at most 1, such as 0.7"


def _add(engine, username="dr.a", role="annotator", password=PASSWORD, **kw):
    with write_session(engine) as session:
        return accounts.create_user(session, username=username, role=role, password=password, **kw)


def test_password_is_stored_as_argon2_hash_only(engine):
    """Test that a new account stores an argon2id hash, never the password."""
    _add(engine, specialties=["Cardiology", " "])
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == "dr.a")).one()
        events = session.exec(select(AuditEvent)).all()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.specialties == ["Cardiology"]
    assert all(PASSWORD not in json.dumps(e.detail) for e in events)
    assert all("$argon2" not in json.dumps(e.detail) for e in events)


def test_specialties_take_the_taxonomys_spelling(engine):
    """Test that specialties typed in another case are stored as the taxonomy spells them, each once, and that
    a name the taxonomy lacks is kept as typed and added to it."""
    _add(engine, specialties=["cardiology", "CARDIOLOGY ", "wilderness  medicine"])
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == "dr.a")).one()
        taxonomy = list_specialties(session=session)
    assert user.specialties == ["Cardiology", "wilderness medicine"]
    assert taxonomy.count("Cardiology") == 1 and "wilderness medicine" in taxonomy
    assert not any(name == "cardiology" for name in taxonomy)


def test_authenticate_accepts_right_and_refuses_wrong(engine):
    """Test that sign-in works with the right password and fails alike for wrong password or user."""
    _add(engine)
    with write_session(engine) as session:
        good = accounts.authenticate(session, username="DR.A", password=PASSWORD)
        wrong = accounts.authenticate(session, username="dr.a", password="nope nope nope")
        unknown = accounts.authenticate(session, username="nobody", password=PASSWORD)
    assert good is not None and good.username == "dr.a" and good.role == "annotator"
    assert wrong is None and unknown is None
    with read_session(engine) as session:
        assert session.exec(select(User).where(User.username == "dr.a")).one().last_sign_in_at is not None


def test_inactive_or_rater_accounts_cannot_sign_in(engine):
    """Test that deactivated accounts and imported raters cannot sign in."""
    admin = _add(engine, username="boss", role="admin")
    target = _add(engine)
    with write_session(engine) as session:
        accounts.update_account(session, user_id=target.user_id, actor_id=admin.user_id, active=False)
    with write_session(engine) as session:
        assert accounts.authenticate(session, username="dr.a", password=PASSWORD) is None
        session.add(User(username="physician-7", kind="imported", can_sign_in=False))
    with write_session(engine) as session:
        assert accounts.authenticate(session, username="physician-7", password="") is None


@pytest.mark.parametrize(
    ("username", "role", "password", "field"),
    [
        ("a", "annotator", PASSWORD, "username"),
        ("has space", "annotator", PASSWORD, "username"),
        ("dr.b", "superuser", PASSWORD, "role"),
        ("dr.b", "annotator", "short", "password"),
        ("dr.b", "annotator", " padded password ", "password"),
    ],
)
def test_bad_account_requests_name_the_field(engine, username, role, password, field):
    """Test that an invalid account request is refused with a message naming the field."""
    with pytest.raises(accounts.AccountError, match=f"^{field}:"):
        _add(engine, username=username, role=role, password=password)
    with read_session(engine) as session:
        assert session.exec(select(User)).all() == []


def test_duplicate_username_is_refused_case_insensitively(engine):
    """Test that usernames are unique regardless of case."""
    _add(engine)
    with pytest.raises(accounts.AccountError, match="taken"):
        _add(engine, username="Dr.A")


def test_first_admin_only_once(engine):
    """Test that the first-admin path works on an empty database and is refused afterwards."""
    with read_session(engine) as session:
        assert accounts.needs_first_admin(session)
    with write_session(engine) as session:
        admin = accounts.create_first_admin(session, username="root", password=PASSWORD)
    assert admin.role == "admin"
    with write_session(engine) as session:
        assert not accounts.needs_first_admin(session)
        with pytest.raises(accounts.AccountError):
            accounts.create_first_admin(session, username="root2", password=PASSWORD)


def test_last_admin_cannot_be_demoted_or_deactivated(engine):
    """Test that the only administrator cannot remove their own admin rights."""
    admin = _add(engine, username="boss", role="admin")
    with write_session(engine) as session:
        with pytest.raises(accounts.AccountError, match="last administrator"):
            accounts.update_account(session, user_id=admin.user_id, actor_id=admin.user_id, role="curator")
        with pytest.raises(accounts.AccountError, match="last administrator"):
            accounts.update_account(session, user_id=admin.user_id, actor_id=admin.user_id, active=False)


def test_password_change_is_audited_without_the_password(engine):
    """Test that changing a password records that it changed, not what it is."""
    admin = _add(engine, username="boss", role="admin")
    user = _add(engine)
    with write_session(engine) as session:
        accounts.update_account(
            session, user_id=user.user_id, actor_id=admin.user_id, new_password="another password", role="curator"
        )
    with write_session(engine) as session:
        assert accounts.authenticate(session, username="dr.a", password="another password").role == "curator"
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "update")).one()
    assert event.detail == {"role": "curator", "password": "changed"}


def test_passwords_never_reach_the_logs(engine, caplog):
    """Test that nothing logged during account work contains the password."""
    caplog.set_level(logging.DEBUG)
    _add(engine)
    with write_session(engine) as session:
        accounts.authenticate(session, username="dr.a", password=PASSWORD)
    assert PASSWORD not in caplog.text


def test_auth_settings_from_secrets():
    """Test that the [medreview.auth] table of secrets.toml is read and checked."""
    assert accounts.auth_settings(None) == accounts.AuthSettings()
    settings = accounts.auth_settings(
        {"medreview": {"auth": {"mode": "header", "header": "X-Remote-User", "auto_create": True}}}
    )
    assert settings.mode == "header" and settings.header == "X-Remote-User" and settings.auto_create
    assert settings.allow_local is False
    with pytest.raises(accounts.AccountError, match="mode"):
        accounts.auth_settings({"medreview": {"auth": {"mode": "magic"}}})
    with pytest.raises(accounts.AccountError, match="role"):
        accounts.auth_settings({"medreview": {"auth": {"default_role": "root"}}})


def test_header_username_only_in_header_mode():
    """Test that the proxy header is read case-insensitively and only in header mode."""
    header_mode = accounts.AuthSettings(mode="header", header="X-Forwarded-User")
    assert accounts.header_username({"x-forwarded-user": " dr.a "}, header_mode) == "dr.a"
    assert accounts.header_username({"x-forwarded-user": "dr.a"}, accounts.AuthSettings()) is None
    assert accounts.header_username({"x-forwarded-user": "  "}, header_mode) is None
    assert accounts.header_username({}, header_mode) is None


def test_external_identity_maps_to_existing_or_created_account(engine):
    """Test that OIDC/proxy identities sign in existing accounts and create new ones only when allowed."""
    _add(engine, email="a@hospital.org")
    strict = accounts.AuthSettings(mode="oidc")
    lenient = accounts.AuthSettings(mode="oidc", auto_create=True, default_role="annotator")
    with write_session(engine) as session:
        by_email = accounts.sign_in_external(session, username=None, email="A@hospital.org", settings=strict)
        unknown = accounts.sign_in_external(session, username=None, email="z@hospital.org", settings=strict)
        created = accounts.sign_in_external(session, username=None, email="new.doc@hospital.org", settings=lenient)
    assert by_email is not None and by_email.username == "dr.a"
    assert unknown is None
    assert created is not None and created.username == "new.doc" and created.role == "annotator"
    with read_session(engine) as session:
        row = session.exec(select(User).where(User.username == "new.doc")).one()
    assert row.password_hash is None and row.email == "new.doc@hospital.org"


def test_screens_by_role():
    """Test that only admins get the admin screen, admins do not grade, and only curators and admins may import."""
    assert screens_for("annotator") == ["home", "grade", "compare", "review_items", "my_work", "items", "edit_item"]
    assert screens_for("curator") == [
        "home",
        "grade",
        "compare",
        "review_items",
        "my_work",
        "items",
        "edit_item",
        "oversight",
        "adjudicate",
        "agreement",
        "runs",
        "judge",
        "leaderboard",
        "exports",
    ]
    assert screens_for("admin") == [
        "home",
        "items",
        "edit_item",
        "oversight",
        "adjudicate",
        "agreement",
        "runs",
        "judge",
        "leaderboard",
        "exports",
        "admin",
    ]
    assert not may_open("curator", "admin") and may_open("admin", "admin")
    assert may_open("annotator", "grade") and may_open("curator", "grade") and not may_open("admin", "grade")
    assert not may_import("annotator") and may_import("curator") and may_import("admin")


def test_password_check_holds_no_write_lock(engine, database_url, monkeypatch):
    """Test that while a sign-in checks the password (slow by design), others can write at once."""
    import sqlite3

    _add(engine)
    real_verify = accounts.verify_password
    writes: list[str] = []

    def verify_while_someone_writes(password_hash, password):  # type: ignore[no-untyped-def]
        other = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None, timeout=0)
        try:
            other.execute("PRAGMA busy_timeout=0")
            other.execute("BEGIN IMMEDIATE")  # 'database is locked' at once if the sign-in holds the lock
            other.execute("COMMIT")
            writes.append("ok")
        finally:
            other.close()
        return real_verify(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", verify_while_someone_writes)
    with write_session(engine) as session:
        who = accounts.authenticate(session, username="dr.a", password=PASSWORD)
    assert who is not None and writes == ["ok"]
    with read_session(engine) as session:
        assert session.exec(select(User).where(User.username == "dr.a")).one().last_sign_in_at is not None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("overlap", 0, "overlap: between 1 and 20 physicians per answer"),
        ("lease_minutes", 0, "lease_minutes: between 1 minute and 24 hours"),
        ("compare_columns", 1, "compare_columns: between 2 and 4 answers side by side"),
        ("compare_columns", 5, "compare_columns: between 2 and 4 answers side by side"),
        ("gold_policy", "coin toss", "gold_policy: one of unanimous, majority, adjudicate"),
        ("duplicate_threshold", 0, THRESHOLD_MESSAGE),
        ("duplicate_threshold", -0.2, THRESHOLD_MESSAGE),
        ("duplicate_threshold", 1.01, THRESHOLD_MESSAGE),
        ("duplicate_threshold", float("nan"), THRESHOLD_MESSAGE),
        ("duplicate_threshold", "high", THRESHOLD_MESSAGE),
        ("duplicate_threshold", True, THRESHOLD_MESSAGE),
        ("duplicate_threshold", None, THRESHOLD_MESSAGE),
        ("is_reference", "yes", "is_reference: true or false (whether the project is a reference set)"),
    ],
)
def test_project_settings_out_of_range_are_refused_by_field(field, value, message):
    """Test that a project setting out of range is refused with a message naming the field."""
    with pytest.raises(AccountError) as refused:
        check_project_settings({"name": "P", field: value})
    assert str(refused.value) == message
    assert check_project_settings({"name": " P ", "compare_columns": 4}) == {"name": "P", "compare_columns": 4}


def test_reference_flag_and_duplicate_threshold_are_checked_stored_and_audited(engine):
    """Test that a project's reference flag and near-duplicate threshold pass the settings check (1 and "0.35"
    included), are stored by create and update, and the update's audit event holds the new and the old values."""
    assert check_project_settings({"duplicate_threshold": 1, "is_reference": True}) == {
        "duplicate_threshold": 1.0,
        "is_reference": True,
    }
    assert check_project_settings({"duplicate_threshold": "0.35"}) == {"duplicate_threshold": 0.35}
    admin = _add(engine, username="boss", role="admin")
    with write_session(engine) as session:
        project_id = administration.create_project(session, actor_id=admin.user_id, name="Benchmark")
    with read_session(engine) as session:
        created = session.get(Project, project_id)
        assert created is not None and (created.is_reference, created.duplicate_threshold) == (False, 0.7)
    with write_session(engine) as session:
        administration.update_project_settings(
            session,
            project_id=project_id,
            actor_id=admin.user_id,
            name="Benchmark",
            is_reference=True,
            duplicate_threshold=0.85,
        )
    with read_session(engine) as session:
        stored = session.get(Project, project_id)
        assert stored is not None and (stored.is_reference, stored.duplicate_threshold) == (True, 0.85)
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "project", AuditEvent.action == "update")
        ).all()
    assert event.actor_id == admin.user_id and event.entity_id == project_id
    assert event.detail == {
        "name": "Benchmark",
        "is_reference": True,
        "duplicate_threshold": 0.85,
        "before": {"is_reference": False, "duplicate_threshold": 0.7},
    }
    with write_session(engine) as session, pytest.raises(AccountError, match="duplicate_threshold"):
        administration.update_project_settings(
            session, project_id=project_id, actor_id=admin.user_id, duplicate_threshold=0
        )
    with read_session(engine) as session:
        stored = session.get(Project, project_id)
        assert stored is not None and stored.duplicate_threshold == 0.85

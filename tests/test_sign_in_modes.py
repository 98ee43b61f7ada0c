"""Sign-in configured in secrets.toml: OIDC through st.login identities, local fallback."""

from __future__ import annotations

from sqlmodel import select

from storage.db import read_session, write_session
from storage.models import User
from storage.users import get_user_by_username

OIDC = {"medreview": {"auth": {"mode": "oidc", "provider": "hospital"}}}


def test_oidc_identity_signs_in_the_matching_account(app, seeded_project, engine):
    """Test that an OIDC identity whose email matches an account lands on that account's home page."""
    with write_session(engine) as session:
        user = get_user_by_username(session=session, username="dr.ramos")
        user.email = "l.ramos@hospital.example"
        session.add(user)
    at = app.new()
    at.secrets = OIDC
    at.user = {"is_logged_in": True, "email": "L.Ramos@hospital.example", "name": "Lucia Ramos"}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Welcome, Dr. Lucia Ramos"


def test_unknown_oidc_identity_is_refused_without_creating_an_account(app, seeded_project, engine):
    """Test that an OIDC identity with no account sees a clear refusal and no account appears."""
    at = app.new()
    at.secrets = OIDC
    at.user = {"is_logged_in": True, "email": "stranger@elsewhere.example"}
    at.run()
    assert not at.exception
    assert any("not linked to a medreview account" in e.value for e in at.error)
    assert at.title[0].value == "Sign in to medreview"
    assert not at.text_input  # local passwords are off in oidc mode unless allow_local
    with read_session(engine) as session:
        assert session.exec(select(User).where(User.email == "stranger@elsewhere.example")).first() is None


def test_oidc_mode_offers_the_organisation_button(app, seeded_project):
    """Test that in OIDC mode a signed-out visitor gets the organisation sign-in button."""
    at = app.new()
    at.secrets = OIDC
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert at.button(key="sign_in_oidc").label == "Sign in with your organisation"


def test_local_form_stays_available_when_allowed(app, seeded_project):
    """Test that allow_local keeps the password form beside the OIDC button."""
    at = app.new()
    at.secrets = {"medreview": {"auth": {"mode": "oidc", "provider": "hospital", "allow_local": True}}}
    at.user = {"is_logged_in": False}
    at.run()
    at.text_input(key="sign_in_username").set_value("curator")
    at.text_input(key="sign_in_password").set_value("medreview-demo")
    at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()
    assert not at.exception
    assert at.title[0].value == "Welcome, Dr. Imani Curator"

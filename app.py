"""medreview: page config, sign-in, and the role's page list for st.navigation."""

import streamlit as st

from pages.common import current_user, reading, sign_in_as, writing
from review import access, accounts

st.set_page_config(page_title="medreview", page_icon=":material/stethoscope:", layout="wide")

SCREEN_PAGES = {
    "home": st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    "grade": st.Page("pages/grade.py", title="Grade", icon=":material/rate_review:", url_path="grade"),
    "compare": st.Page("pages/compare.py", title="Side by side", icon=":material/compare:", url_path="compare"),
    "review_items": st.Page(
        "pages/review_items.py", title="Review items", icon=":material/fact_check:", url_path="review"
    ),
    "my_work": st.Page("pages/my_work.py", title="My work", icon=":material/assignment_ind:", url_path="my-work"),
    "items": st.Page("pages/items.py", title="Items", icon=":material/list_alt:", url_path="items"),
    "edit_item": st.Page("pages/edit_item.py", title="Item editor", icon=":material/edit_note:", url_path="edit-item"),
    "oversight": st.Page("pages/oversight.py", title="Oversight", icon=":material/monitoring:", url_path="oversight"),
    "adjudicate": st.Page("pages/adjudicate.py", title="Adjudicate", icon=":material/gavel:", url_path="adjudicate"),
    "agreement": st.Page("pages/agreement.py", title="Agreement", icon=":material/query_stats:", url_path="agreement"),
    "runs": st.Page("pages/runs.py", title="Model runs", icon=":material/smart_toy:", url_path="runs"),
    "judge": st.Page("pages/judge.py", title="Judge vs physicians", icon=":material/balance:", url_path="judge"),
    "leaderboard": st.Page(
        "pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", url_path="leaderboard"
    ),
    "exports": st.Page("pages/exports.py", title="Exports", icon=":material/download:", url_path="exports"),
    "admin": st.Page("pages/admin.py", title="Admin", icon=":material/admin_panel_settings:", url_path="admin"),
}


def _settings() -> accounts.AuthSettings:
    try:
        return accounts.auth_settings(st.secrets.to_dict())
    except (FileNotFoundError, KeyError, AttributeError):
        return accounts.AuthSettings()
    except Exception as exc:  # an unreadable secrets.toml: say so, sign in locally
        if type(exc).__name__.startswith("StreamlitSecret"):
            return accounts.AuthSettings()
        raise


def _external_sign_in(settings: accounts.AuthSettings) -> None:
    if settings.mode == "header":
        username = accounts.header_username(dict(st.context.headers or {}), settings)
        if username:
            with writing() as session:
                user = accounts.sign_in_external(session, username=username, email=None, settings=settings)
            if user:
                sign_in_as(user)
    elif settings.mode == "oidc" and getattr(st.user, "is_logged_in", False):
        with writing() as session:
            user = accounts.sign_in_external(
                session,
                username=st.user.get("preferred_username"),
                email=st.user.get("email"),
                settings=settings,
            )
        if user:
            sign_in_as(user)
        else:
            st.error("Your identity is not linked to a medreview account. Ask an administrator.")


def first_admin_page() -> None:
    st.title("Welcome to medreview")
    st.write("This database has no administrator yet. Create the first admin account.")
    with st.form("first_admin_form"):
        username = st.text_input("Username", key="first_admin_username")
        password = st.text_input("Password", type="password", key="first_admin_password")
        again = st.text_input("Password again", type="password", key="first_admin_password_again")
        submitted = st.form_submit_button("Create admin")
    if submitted:
        if password != again:
            st.error("The two passwords differ.")
            return
        try:
            with writing() as session:
                user = accounts.create_first_admin(session, username=username, password=password)
        except accounts.AccountError as exc:
            st.error(str(exc))
            return
        sign_in_as(user)
        st.rerun()


def sign_in_page() -> None:
    st.title("Sign in to medreview")
    settings = _settings()
    if settings.mode == "oidc" and settings.provider is not None:
        if st.button("Sign in with your organisation", key="sign_in_oidc"):
            st.login(settings.provider)
    if settings.mode == "header":
        st.info("Sign-in is handled by your organisation's proxy; no identity was received.")
    if not settings.allow_local:
        return
    with st.form("sign_in_form"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        with writing() as session:
            user = accounts.authenticate(session, username=username, password=password)
        if user is None:
            st.error("Wrong username or password.")
            return
        sign_in_as(user)
        st.rerun()


user = current_user()
if user is None:
    _external_sign_in(_settings())
    user = current_user()

if user is None:
    with reading() as session:
        first = accounts.needs_first_admin(session)
    entry = first_admin_page if first else sign_in_page
    page = st.navigation([st.Page(entry, title="Sign in", url_path="sign-in")], position="hidden")
else:
    # expanded: a curator has 14 screens, and none should hide behind "View more"
    page = st.navigation([SCREEN_PAGES[name] for name in access.screens_for(user.role)], expanded=True)
page.run()

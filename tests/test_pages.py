"""Page tests through Streamlit's AppTest: navigation per role, sign-in, home, items, admin, import.

Every test runs the real app (app.py and pages/*.py) against a fresh SQLite file and checks what is
stored in the database and what the page shows.

Streamlit treats a `pages/` folder next to the main script as a folder of pages until some run
calls st.navigation; a server process does that on its first run and from then on always runs
app.py. AppTest forgets it before every `run()`, so a plain run would execute a page file directly,
skipping app.py. The autouse fixture `like_a_running_server` (tests/conftest.py) makes AppTest behave like the server;
tests that use the `pages_folder` fixture keep AppTest's folder mode to check that each page file guards itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from review import access, accounts, catalog
from review.demo import DEMO_PASSWORD, DEMO_PROJECT
from review.importing import import_answers, import_items
from storage.db import read_session, write_session
from storage.models import Answer, AuditEvent, Item, Model, Project, User

USER_KEY = "signed_in_user_id"
SIGN_IN_TITLE = "Sign in to medreview"
FIRST_ADMIN_TITLE = "Welcome to medreview"
ROLE_USERS = {"annotator": "dr.okafor", "curator": "curator", "admin": "admin"}
PAGE_TITLES = {
    "home": None,  # "Welcome, <display name>", checked per user below
    "items": "Items",
    "edit_item": "Item editor",
    "grade": "Grade",
    "compare": "Side by side",
    "review_items": "Review items",
    "my_work": "My work",
    "oversight": "Oversight",
    "adjudicate": "Adjudicate",
    "agreement": "Agreement",
    "runs": "Model runs",
    "judge": "Judge vs physicians",
    "leaderboard": "Leaderboard",
    "exports": "Exports",
    "admin": "Administration",
}
CURATION = [
    "pages/oversight.py",
    "pages/adjudicate.py",
    "pages/agreement.py",
    "pages/runs.py",
    "pages/judge.py",
    "pages/leaderboard.py",
    "pages/exports.py",
]
DISPLAY_NAMES = {"dr.okafor": "Dr. Chidi Okafor", "curator": "Dr. Imani Curator", "admin": "Demo Admin"}
HTML = "<script>alert(1)</script><b>x</b>"


# --- helpers -----------------------------------------------------------------------------------


def page_path(screen: str) -> str:
    return f"pages/{screen}.py"


def nodes(at: AppTest) -> Iterator[Any]:
    """Every element and block of the main area and the sidebar, depth first."""
    stack: list[Any] = [at.main, at.sidebar]
    while stack:
        node = stack.pop()
        yield node
        children = getattr(node, "children", None) or {}
        stack.extend(children.values())


def page_bytes(at: AppTest) -> bytes:
    """Everything the page sent to the browser (all element and block protos, serialized)."""
    return b"\n".join(node.proto.SerializeToString() for node in nodes(at) if getattr(node, "proto", None))


def shown_strings(at: AppTest) -> list[str]:
    """The readable strings on the page: titles, text, markdown, captions, messages, labels."""
    strings: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "code", "error", "success", "info"):
        strings.extend(str(element.value) for element in getattr(at, kind))
    strings.extend(expander.label for expander in at.expander)
    strings.extend(f"{metric.label} {metric.value}" for metric in at.metric)
    for frame in at.dataframe:
        strings.append(frame.value.to_csv(index=False))
    return strings


def titles(at: AppTest) -> list[str]:
    return [title.value for title in at.title]


def errors(at: AppTest) -> list[str]:
    return [error.value for error in at.error]


def registered_scripts(at: AppTest) -> list[str]:
    """The page files the last navigation registered, as pages/<name>.py, in order."""
    return [
        f"pages/{Path(str(info['script_path'])).name}"
        for info in at._registered_pages.values()
        if info.get("script_path")
    ]


def open_page(at: AppTest, screen: str) -> AppTest:
    return at.switch_page(page_path(screen)).run()


def submit(at: AppTest, form: str, label: str) -> AppTest:
    return at.button(key=f"FormSubmitter:{form}-{label}").click().run()


def user_row(engine: Engine, username: str) -> User | None:
    with read_session(engine) as session:
        return session.exec(select(User).where(User.username == username)).first()


def project_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        project = session.exec(select(Project).where(Project.name == name)).one()
        assert project.id is not None
        return project.id


def current_item(engine: Engine, project: str, external_id: str) -> Item:
    with read_session(engine) as session:
        query = select(Item).where(
            Item.project_id == project_id(engine, project),
            Item.external_id == external_id,
            Item.is_current == True,  # noqa: E712
        )
        return session.exec(query).one()


def model_names(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return list(session.exec(select(Model.name)).all())


def database_bytes(database_url: str) -> bytes:
    """The raw SQLite database file and its write-ahead log, to look for secrets stored in plain text."""
    path = Path(database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def audit_details(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return [json.dumps(event.detail) for event in session.exec(select(AuditEvent)).all()]


def healthbench_row(prompt_id: str, content: str, criterion: str = "Says to see a doctor.") -> dict[str, Any]:
    return {
        "prompt_id": prompt_id,
        "prompt": [{"role": "user", "content": content}],
        "rubrics": [{"criterion": criterion, "points": 5, "tags": ["axis:accuracy"]}],
        "example_tags": ["theme:test"],
    }


def jsonl(*rows: dict[str, Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def fill_first_admin(at: AppTest, username: str, password: str, again: str) -> AppTest:
    at.text_input(key="first_admin_username").set_value(username)
    at.text_input(key="first_admin_password").set_value(password)
    at.text_input(key="first_admin_password_again").set_value(again)
    return submit(at, "first_admin_form", "Create admin")


# --- 1. every page opens for every role ------------------------------------------------------------


SMOKE_CASES = [(role, screen) for role in ROLE_USERS for screen in access.screens_for(role)]


@pytest.mark.parametrize(("role", "screen"), SMOKE_CASES, ids=[f"{r}-{s}" for r, s in SMOKE_CASES])
def test_every_page_opens_for_every_role(app, seeded_project, role, screen):
    """Test that each page of a role's navigation opens without an exception and shows its title."""
    username = ROLE_USERS[role]
    at = app.sign_in(username)
    assert not at.exception
    at = open_page(at, screen)
    assert not at.exception
    assert not errors(at)
    expected = PAGE_TITLES[screen] or f"Welcome, {DISPLAY_NAMES[username]}"
    assert titles(at) == [expected]
    assert f"{DISPLAY_NAMES[username]} ({role})" in [text.value for text in at.sidebar.text]


# --- 2. navigation per role -------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_navigation_lists_exactly_the_role_screens(app, seeded_project, role):
    """Test that a role's navigation is exactly access.screens_for(role): Admin only for admins, Grade not for them."""
    at = app.sign_in(ROLE_USERS[role])
    assert not at.exception
    expected = [page_path(screen) for screen in access.screens_for(role)]
    assert registered_scripts(at) == expected
    for screen in access.screens_for(role):
        open_page(at, screen)
        assert registered_scripts(at) == expected
    if role == "admin":
        # no Grade: admins do not grade
        assert expected == ["pages/home.py", "pages/items.py", "pages/edit_item.py", *CURATION, "pages/admin.py"]
        assert titles(open_page(at, "admin")) == ["Administration"]
        with pytest.raises(ValueError, match="grade.py"):
            at.switch_page("pages/grade.py")
    else:
        work = ["pages/home.py", "pages/grade.py", "pages/compare.py", "pages/review_items.py", "pages/my_work.py"]
        assert expected == [*work, "pages/items.py", "pages/edit_item.py", *(CURATION if role == "curator" else [])]
        with pytest.raises(ValueError, match="admin.py"):
            at.switch_page("pages/admin.py")


def test_signed_out_visitor_has_only_the_sign_in_page(app, seeded_project):
    """Test that a signed-out visitor's navigation holds only the sign-in page, so no page file can be opened."""
    at = app.new().run()
    assert titles(at) == [SIGN_IN_TITLE]
    assert [info.get("page_name") for info in at._registered_pages.values()] == ["Sign in"]
    for screen in access.SCREENS:
        with pytest.raises(ValueError):
            at.switch_page(page_path(screen))


@pytest.mark.parametrize("role", ["annotator", "curator"])
def test_admin_page_file_refuses_other_roles(app, seeded_project, pages_folder, role):
    """Test that pages/admin.py run directly refuses a non-admin and shows no people, forms or projects."""
    at = app.sign_in(ROLE_USERS[role])
    at.run()  # folder mode: AppTest now lists every file in pages/, so admin.py can be run directly
    assert "pages/admin.py" in registered_scripts(at)
    at = open_page(at, "admin")
    assert not at.exception
    assert errors(at) == ["This page is not available for your role."]
    assert titles(at) == []
    assert not at.text_input and not at.dataframe and not at.selectbox
    assert b"dr.lindqvist" not in page_bytes(at)


def test_page_files_ask_a_signed_out_visitor_to_sign_in(app, seeded_project, engine, pages_folder):
    """Test that every page file run directly for a no longer valid session shows only the sign-in warning."""
    at = app.sign_in("admin")
    at.run()  # folder mode: page files can be run directly
    with write_session(engine) as session:
        other = accounts.create_user(session, username="admin2", role="admin", password="long enough pw")
        admin = user_row(engine, "admin")
        assert admin is not None
        accounts.update_account(session, user_id=admin.id, actor_id=other.user_id, active=False)
    for screen in access.SCREENS:
        at = open_page(at, screen)
        assert not at.exception
        assert [warning.value for warning in at.warning] == ["Please sign in."]
        assert titles(at) == []
        assert not at.dataframe and not at.metric


# --- 3. the first administrator -------------------------------------------------------------------


def test_first_admin_flow_on_an_empty_database(app, engine, database_url):
    """Test that an empty database asks for the first admin, validates the form, and then signs them in."""
    at = app.new().run()
    assert not at.exception
    assert titles(at) == [FIRST_ADMIN_TITLE]
    assert [w.key for w in at.text_input] == [
        "first_admin_username",
        "first_admin_password",
        "first_admin_password_again",
    ]

    at = fill_first_admin(at, "root.admin", "correct horse battery", "correct horse batterz")
    assert errors(at) == ["The two passwords differ."]
    assert user_row(engine, "root.admin") is None

    at = fill_first_admin(at, "root.admin", "short", "short")
    assert len(errors(at)) == 1
    assert errors(at)[0].startswith("password:")
    assert str(accounts.MIN_PASSWORD_LENGTH) in errors(at)[0]
    assert user_row(engine, "root.admin") is None

    password = "correct horse battery"
    at = fill_first_admin(at, "root.admin", password, password)
    assert not at.exception
    assert not errors(at)
    stored = user_row(engine, "root.admin")
    assert stored is not None
    assert stored.role == "admin"
    assert stored.active and stored.can_sign_in
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2")
    assert password not in stored.password_hash
    assert accounts.verify_password(stored.password_hash, password)
    assert titles(at) == ["Welcome, root.admin"]
    assert at.session_state[USER_KEY] == stored.id
    assert registered_scripts(at) == [
        "pages/home.py",
        "pages/items.py",
        "pages/edit_item.py",
        *CURATION,
        "pages/admin.py",
    ]
    assert password.encode() not in page_bytes(at)
    assert all(password not in detail for detail in audit_details(engine))
    assert b"root.admin" in database_bytes(database_url)  # the file is readable: the next check means something
    assert password.encode() not in database_bytes(database_url)

    again = app.new().run()
    assert titles(again) == [SIGN_IN_TITLE]
    assert [w.key for w in again.text_input] == ["sign_in_username", "sign_in_password"]


def test_first_admin_form_is_gone_once_an_admin_exists(app, engine):
    """Test that a second browser that showed the first-admin form gets the sign-in page and creates no admin."""
    first = app.new().run()
    second = app.new().run()
    fill_first_admin(first, "first.admin", "long enough pw", "long enough pw")
    at = fill_first_admin(second, "second.admin", "long enough pw", "long enough pw")
    assert titles(at) == [SIGN_IN_TITLE]
    assert user_row(engine, "first.admin") is not None
    assert user_row(engine, "second.admin") is None


# --- 4. sign in and out ----------------------------------------------------------------------------


def test_wrong_password_is_refused(app, seeded_project):
    """Test that a wrong password shows the generic error and keeps no user id in session state."""
    at = app.sign_in("dr.okafor", "not-the-password")
    assert not at.exception
    assert errors(at) == ["Wrong username or password."]
    assert USER_KEY not in at.session_state
    assert titles(at) == [SIGN_IN_TITLE]

    unknown = app.sign_in("nobody.here", DEMO_PASSWORD)
    assert errors(unknown) == ["Wrong username or password."]
    assert USER_KEY not in unknown.session_state


def test_deactivated_user_cannot_sign_in(app, seeded_project, engine):
    """Test that a deactivated account gets the same error as a wrong password and is not signed in."""
    target = user_row(engine, "dr.ramos")
    assert target is not None and target.id is not None
    with write_session(engine) as session:
        accounts.update_account(session, user_id=target.id, actor_id=None, active=False)
    at = app.sign_in("dr.ramos")
    assert errors(at) == ["Wrong username or password."]
    assert USER_KEY not in at.session_state
    assert titles(at) == [SIGN_IN_TITLE]


def test_deactivation_signs_out_an_open_session(as_physician, engine):
    """Test that a signed-in person who is deactivated is back on the sign-in page at their next click."""
    at = as_physician
    user_id = at.session_state[USER_KEY]
    with write_session(engine) as session:
        accounts.update_account(session, user_id=user_id, actor_id=None, active=False)
    at.run()
    assert titles(at) == [SIGN_IN_TITLE]
    assert USER_KEY not in at.session_state


def test_sign_in_and_sign_out(as_physician, engine):
    """Test that signing in stores the user's id and stamps the sign-in, and signing out returns to sign-in."""
    at = as_physician
    stored = user_row(engine, "dr.okafor")
    assert stored is not None and stored.last_sign_in_at is not None
    assert at.session_state[USER_KEY] == stored.id
    at.button(key="sidebar_sign_out").click().run()
    assert not at.exception
    assert titles(at) == [SIGN_IN_TITLE]
    assert USER_KEY not in at.session_state
    at.run()
    assert titles(at) == [SIGN_IN_TITLE]


# --- 5. home --------------------------------------------------------------------------------------


def test_home_shows_waiting_work_and_project_progress(as_physician):
    """Test that the physician's home shows 24 answers to grade, 0 drafts and 13 items (8 approved) in Demo clinic."""
    at = as_physician
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {
        "Answers you can grade": "24",
        "Comparisons you can take": "8",
        "Items you can review": "5",
        "Drafts to finish": "0",
    }
    assert (
        f"{DEMO_PROJECT}: 24 answers need your grading, 8 items to compare side by side, 5 items need your review"
        in [text.value for text in at.text]
    )
    table = at.dataframe[0].value
    row = table[table["project"] == DEMO_PROJECT].iloc[0]
    assert int(row["items"]) == 13
    assert int(row["approved"]) == 8
    assert int(row["answers"]) == 34
    assert int(row["labels"]) == 0


# --- 6. items --------------------------------------------------------------------------------------


def caption_count(at: AppTest) -> int:
    [caption] = [c.value for c in at.caption if " items match" in c.value]
    return int(caption.split(" items match")[0])


def catalog_total(engine: Engine, **filters: Any) -> int:
    with read_session(engine) as session:
        _, total = catalog.item_page(session, project_id=project_id(engine, DEMO_PROJECT), **filters)
    return total


def test_items_filters_change_the_count(as_physician, engine):
    """Test that the kind, text and specialty filters change the 'N items match' caption as the catalog says."""
    at = open_page(as_physician, "items")
    assert caption_count(at) == 13

    at.selectbox(key="items_filter_kind").set_value("mcq").run()
    assert caption_count(at) == 5
    assert set(at.dataframe[0].value["kind"]) == {"mcq"}
    at.selectbox(key="items_filter_kind").set_value("open").run()
    assert caption_count(at) == 8
    at.selectbox(key="items_filter_kind").set_value("all").run()

    at.text_input(key="items_filter_text").set_value("warfarin").run()
    assert caption_count(at) == catalog_total(engine, text="warfarin")
    assert 1 <= caption_count(at) < 13
    assert "demo-open-03" in list(at.dataframe[0].value["external_id"])
    at.text_input(key="items_filter_text").set_value("no item says zzyzx").run()
    assert caption_count(at) == 0
    assert [info.value for info in at.info] == ["No items match these filters."]
    at.text_input(key="items_filter_text").set_value("").run()

    at.selectbox(key="items_filter_specialty").set_value("Cardiology").run()
    cardiology = catalog_total(engine, specialty="Cardiology")
    assert 1 <= cardiology < 13
    assert caption_count(at) == cardiology
    assert all("Cardiology" in s for s in at.dataframe[0].value["specialties"])


def open_item(at: AppTest, engine: Engine, external_id: str, project: str = DEMO_PROJECT) -> AppTest:
    item = current_item(engine, project, external_id)
    return at.selectbox(key="items_view").set_value(item.id).run()


def test_item_view_shows_conversation_as_text_and_the_rubric(as_physician, engine):
    """Test that an opened item shows each message as plain st.text (not markdown) and its whole rubric."""
    at = open_item(open_page(as_physician, "items"), engine, "demo-open-01")
    assert not at.exception
    item = current_item(engine, DEMO_PROJECT, "demo-open-01")
    texts = [text.value for text in at.main.text]
    markdown = "\n".join(m.value for m in at.markdown)
    for message in item.conversation:
        assert message["content"] in texts
        assert message["content"] not in markdown
    assert len(at.chat_message) == len(item.conversation)
    assert "demo-open-01" in [s.value for s in at.subheader]
    with read_session(engine) as session:
        from storage.items import list_criteria

        criteria = list_criteria(session=session, item_id=item.id)
    rubric = at.dataframe[1].value
    assert list(rubric["criterion"]) == [c.text for c in criteria]
    assert list(rubric["points"]) == [c.points for c in criteria]
    assert list(rubric["must not"]) == [c.points < 0 for c in criteria]


def test_item_view_shows_mcq_options_and_key(as_curator, engine):
    """Test that an opened multiple-choice item shows its stem and every option as text, marking the key."""
    at = open_page(as_curator, "items")
    at.selectbox(key="items_filter_kind").set_value("mcq").run()
    at = open_item(at, engine, "demo-mcq-01")
    item = current_item(engine, DEMO_PROJECT, "demo-mcq-01")
    texts = [text.value for text in at.main.text]
    assert item.question in texts
    for letter, option in item.options.items():
        mark = " (key)" if letter == item.answer_key else ""
        assert f"{letter}. {option}{mark}" in texts
    assert "C. Antibodies that stimulate the thyrotropin (TSH) receptor (key)" in texts


def answer_count(engine: Engine, external_id: str) -> int:
    item = current_item(engine, DEMO_PROJECT, external_id)
    with read_session(engine) as session:
        return len(session.exec(select(Answer).where(Answer.item_id == item.id)).all())


def test_annotator_sees_blinded_answers_without_model_names(as_physician, engine):
    """Test that a physician sees 'Answer 1'... labels and no model name anywhere on the page."""
    at = open_item(open_page(as_physician, "items"), engine, "demo-open-01")
    count = answer_count(engine, "demo-open-01")
    assert count >= 2
    labels = [expander.label for expander in at.expander]
    assert [label.split(" · ")[0] for label in labels] == [f"Answer {n}" for n in range(1, count + 1)]
    names = model_names(engine)
    assert {"model-alpha", "model-beta", "model-gamma"} <= set(names)
    shown = "\n".join(shown_strings(at))
    everything = page_bytes(at)
    for name in names:
        assert name not in shown
        assert name.encode() not in everything
    assert f"**Model answers** ({count})" in [m.value for m in at.markdown]


def test_blinded_answer_order_is_per_physician_not_per_model(app, seeded_project, engine):
    """Test that the blinded order differs between physicians, so 'Answer 1' does not name a model."""
    texts_by_user = {}
    for username in ("dr.okafor", "dr.lindqvist", "dr.ramos"):
        at = open_item(open_page(app.sign_in(username), "items"), engine, "demo-open-01")
        texts_by_user[username] = [t.value for e in at.expander for t in e.text]
    orders = list(texts_by_user.values())
    assert all(sorted(order) == sorted(orders[0]) for order in orders)
    assert len({tuple(order) for order in orders}) > 1
    again = open_item(open_page(app.sign_in("dr.okafor"), "items"), engine, "demo-open-01")
    assert [t.value for e in again.expander for t in e.text] == texts_by_user["dr.okafor"]


def test_curator_sees_model_names(as_curator, engine):
    """Test that a curator sees the model names on the answers of an opened item."""
    at = open_item(open_page(as_curator, "items"), engine, "demo-open-01")
    labels = [expander.label.split(" · ")[0] for expander in at.expander if " · " in expander.label]
    assert "model-alpha" in labels and "model-beta" in labels
    assert not any(label.startswith("Answer ") for label in labels)


def test_annotator_has_no_import(as_physician):
    """Test that the items page offers a physician no import expander, form or file uploader."""
    at = open_page(as_physician, "items")
    assert "Import items from a file" not in [expander.label for expander in at.expander]
    assert not at.file_uploader
    assert b"items_import_form" not in page_bytes(at)


def test_curator_has_import(as_curator):
    """Test that the items page offers a curator the import expander with a file uploader."""
    at = open_page(as_curator, "items")
    assert "Import items from a file" in [expander.label for expander in at.expander]
    assert [uploader.key for uploader in at.file_uploader] == ["items_upload"]


def test_imported_html_is_shown_verbatim_as_text(app, seeded_project, engine):
    """Test that HTML in imported conversations and answers is shown literally in st.text, never as markdown."""
    with write_session(engine) as session:
        import_items(
            session,
            project_name="Escapes",
            data=jsonl(healthbench_row("html-1", f"Is this safe? {HTML}", criterion=f"Ignores {HTML}")),
            filename="escape.jsonl",
        )
        import_answers(
            session,
            project_name="Escapes",
            data=jsonl({"external_id": "html-1", "model": "model-html", "answer": f"Answer with {HTML}"}),
            filename="answers.jsonl",
        )
    at = open_page(app.sign_in("curator"), "items")
    at.selectbox(key="items_project").set_value("Escapes").run()
    assert caption_count(at) == 1
    at = open_item(at, engine, "html-1", project="Escapes")
    assert not at.exception
    texts = [text.value for text in at.main.text]
    assert f"Is this safe? {HTML}" in texts
    assert f"Answer with {HTML}" in texts
    assert list(at.dataframe[1].value["criterion"]) == [f"Ignores {HTML}"]
    for markdown in at.markdown:
        assert "<script>" not in markdown.value and "<b>" not in markdown.value
    for caption in at.caption:
        assert "<script>" not in caption.value


# --- 7. admin ------------------------------------------------------------------------------------


def add_person(at: AppTest, **fields: Any) -> AppTest:
    at.text_input(key="admin_new_username").set_value(fields["username"])
    at.text_input(key="admin_new_display_name").set_value(fields.get("display_name", ""))
    at.selectbox(key="admin_new_role").set_value(fields.get("role", "annotator"))
    at.multiselect(key="admin_new_specialties").set_value(fields.get("specialties", []))
    at.text_input(key="admin_new_password").set_value(fields.get("password", ""))
    return submit(at, "admin_add_user_form", "Add person")


def people_table(at: AppTest) -> Any:
    return at.dataframe[0].value


def test_admin_adds_a_person(as_admin, engine, database_url):
    """Test that adding a person stores their role, specialties and an argon2 hash, never the password."""
    password = "Sup3r-secret-pw"
    at = open_page(as_admin, "admin")
    at = add_person(
        at,
        username="dr.ito",
        display_name="Dr. Ken Ito",
        role="curator",
        specialties=["Cardiology", "Nephrology"],
        password=password,
    )
    assert not at.exception
    assert not errors(at)
    stored = user_row(engine, "dr.ito")
    assert stored is not None
    assert stored.role == "curator"
    assert stored.specialties == ["Cardiology", "Nephrology"]
    assert stored.display_name == "Dr. Ken Ito"
    assert stored.password_hash is not None and stored.password_hash.startswith("$argon2")
    assert password not in stored.password_hash
    assert accounts.verify_password(stored.password_hash, password)
    table = people_table(at)
    row = table[table["username"] == "dr.ito"].iloc[0]
    assert row["role"] == "curator"
    assert row["specialties"] == "Cardiology, Nephrology"
    assert "password_hash" not in table.columns
    assert password.encode() not in page_bytes(at)
    assert stored.password_hash.encode() not in page_bytes(at)
    assert all(password not in detail for detail in audit_details(engine))
    assert all(stored.password_hash not in detail for detail in audit_details(engine))
    assert any("dr.ito" in detail for detail in audit_details(engine))
    assert [success.value for success in at.success] == ["Added dr.ito as curator."]
    assert b"Dr. Ken Ito" in database_bytes(database_url)
    assert password.encode() not in database_bytes(database_url)

    signed_in = app_sign_in_as(at, "dr.ito", password)
    assert titles(signed_in) == ["Welcome, Dr. Ken Ito"]


def app_sign_in_as(at: AppTest, username: str, password: str) -> AppTest:
    """A new browser session on the same app, signing in with these credentials."""
    fresh = AppTest.from_file(at._script_path, default_timeout=60).run()
    fresh.text_input(key="sign_in_username").set_value(username)
    fresh.text_input(key="sign_in_password").set_value(password)
    return submit(fresh, "sign_in_form", "Sign in")


def test_admin_duplicate_username_is_refused(as_admin, engine):
    """Test that adding an existing username shows an error naming it and creates no second account."""
    at = add_person(open_page(as_admin, "admin"), username="DR.OKAFOR", role="admin", password="another-pass-1")
    assert not at.exception
    assert len(errors(at)) == 1
    assert "DR.OKAFOR" in errors(at)[0] and "taken" in errors(at)[0]
    with read_session(engine) as session:
        matches = session.exec(select(User).where(User.username.ilike("dr.okafor"))).all()  # type: ignore[attr-defined]
    assert [(u.username, u.role) for u in matches] == [("dr.okafor", "annotator")]


def test_admin_short_password_is_refused(as_admin, engine):
    """Test that a too-short initial password shows the error naming the password and creates nobody."""
    at = add_person(open_page(as_admin, "admin"), username="dr.short", password="abc")
    assert errors(at) == [f"password: use at least {accounts.MIN_PASSWORD_LENGTH} characters"]
    assert user_row(engine, "dr.short") is None
    assert "dr.short" not in list(people_table(at)["username"])


def edit_person(at: AppTest, engine: Engine, username: str, **fields: Any) -> AppTest:
    stored = user_row(engine, username)
    assert stored is not None
    at.selectbox(key="admin_edit_user").set_value(stored.id).run()
    if "role" in fields:
        at.selectbox(key=f"admin_edit_role_{stored.id}").set_value(fields["role"])
    if "specialties" in fields:
        at.multiselect(key=f"admin_edit_specialties_{stored.id}").set_value(fields["specialties"])
    if "active" in fields:
        at.checkbox(key=f"admin_edit_active_{stored.id}").set_value(fields["active"])
    if "password" in fields:
        at.text_input(key=f"admin_edit_password_{stored.id}").set_value(fields["password"])
    return submit(at, "admin_edit_user_form", "Save changes")


def test_admin_changes_a_role(as_admin, engine):
    """Test that changing a person's role in the edit form is stored and shown in the people table."""
    at = edit_person(open_page(as_admin, "admin"), engine, "dr.lindqvist", role="curator")
    assert not at.exception
    assert not errors(at)
    stored = user_row(engine, "dr.lindqvist")
    assert stored is not None and stored.role == "curator"
    assert stored.specialties == ["Cardiology", "Endocrinology"]
    table = people_table(at)
    assert table[table["username"] == "dr.lindqvist"].iloc[0]["role"] == "curator"


def edit_form_values(at: AppTest) -> tuple[Any, ...]:
    form = [w for w in (*at.selectbox, *at.multiselect, *at.checkbox) if str(w.key).startswith("admin_edit_")]
    by_kind = {w.key.rsplit("_", 1)[0]: w.value for w in form if w.key != "admin_edit_user"}
    return by_kind["admin_edit_role"], by_kind["admin_edit_specialties"], by_kind["admin_edit_active"]


def test_edit_form_follows_the_chosen_person(as_admin, engine):
    """Test that choosing another person fills the edit form with that person's stored values, not the last one's."""
    at = open_page(as_admin, "admin")
    for username in ("admin", "dr.ramos", "curator", "dr.okafor", "admin"):
        stored = user_row(engine, username)
        assert stored is not None
        at.selectbox(key="admin_edit_user").set_value(stored.id).run()
        assert edit_form_values(at) == (stored.role, stored.specialties, True)


def test_saving_another_person_keeps_their_role(as_admin, engine):
    """Test that saving a password for a person chosen after an admin does not give them the admin's role."""
    at = open_page(as_admin, "admin")
    admin = user_row(engine, "admin")
    assert admin is not None
    at.selectbox(key="admin_edit_user").set_value(admin.id).run()
    at = edit_person(at, engine, "dr.okafor", password="fresh-password-1")
    assert not errors(at)
    stored = user_row(engine, "dr.okafor")
    assert stored is not None
    assert (stored.role, stored.specialties, stored.active) == ("annotator", ["Emergency Medicine", "Pediatrics"], True)


def test_admin_cannot_demote_the_last_admin(as_admin, engine):
    """Test that demoting or deactivating the only admin is refused with an error and nothing changes."""
    at = edit_person(open_page(as_admin, "admin"), engine, "admin", role="annotator")
    assert errors(at) == ["role: this is the last administrator; make someone else admin first"]
    stored = user_row(engine, "admin")
    assert stored is not None and stored.role == "admin" and stored.active

    at = edit_person(at, engine, "admin", active=False)
    assert errors(at) == ["role: this is the last administrator; make someone else admin first"]
    stored = user_row(engine, "admin")
    assert stored is not None and stored.role == "admin" and stored.active


def test_admin_changes_a_password_without_storing_it(as_admin, engine, database_url):
    """Test that a new password set by an admin works for sign-in and appears in no audit row or element."""
    password = "brand-new-pass-77"
    at = edit_person(open_page(as_admin, "admin"), engine, "dr.ramos", password=password)
    assert not errors(at)
    stored = user_row(engine, "dr.ramos")
    assert stored is not None and stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2") and password not in stored.password_hash
    assert accounts.verify_password(stored.password_hash, password)
    assert password.encode() not in page_bytes(at)
    assert all(password not in detail for detail in audit_details(engine))
    assert password.encode() not in database_bytes(database_url)
    assert titles(app_sign_in_as(at, "dr.ramos", password)) == ["Welcome, Dr. Lucia Ramos"]
    assert errors(app_sign_in_as(at, "dr.ramos", DEMO_PASSWORD)) == ["Wrong username or password."]


def test_admin_creates_a_project(as_admin, engine):
    """Test that saving the 'New project' form with overlap 3 and 3 columns stores those settings."""
    at = open_page(as_admin, "admin")
    assert at.selectbox(key="admin_project").value == "new"
    at.text_input(key="admin_project_name_new").set_value("  Cardiology review  ")
    at.text_area(key="admin_project_guidelines_new").set_value("Grade strictly.")
    at.number_input(key="admin_project_overlap_new").set_value(3)
    at.selectbox(key="admin_project_policy_new").set_value("majority")
    at.checkbox(key="admin_project_unsure_new").set_value(True)
    at.number_input(key="admin_project_columns_new").set_value(3)
    at.number_input(key="admin_project_min_labels_new").set_value(3)
    assert at.checkbox(key="admin_project_reference_new").value is False
    assert at.number_input(key="admin_project_threshold_new").value == pytest.approx(0.7)
    at.checkbox(key="admin_project_reference_new").set_value(True)
    at.number_input(key="admin_project_threshold_new").set_value(0.85)
    at = submit(at, "admin_project_form", "Save project")
    assert not at.exception
    assert not errors(at)
    with read_session(engine) as session:
        project = session.exec(select(Project).where(Project.name == "Cardiology review")).one()
    assert project.overlap == 3
    assert project.compare_columns == 3
    assert project.gold_min_labels == 3
    assert project.gold_policy == "majority"
    assert project.allow_unsure is True
    assert project.guidelines == "Grade strictly."
    assert project.is_reference is True
    assert project.duplicate_threshold == pytest.approx(0.85)
    table = at.dataframe[1].value
    row = table[table["project"] == "Cardiology review"].iloc[0]
    assert int(row["overlap"]) == 3
    assert int(row["side by side columns"]) == 3
    assert bool(row["reference set"]) is True
    assert float(row["near-duplicate threshold"]) == pytest.approx(0.85)


def test_admin_updates_project_settings(as_admin, engine):
    """Test that choosing an existing project fills the form with its settings and saving stores changes."""
    at = open_page(as_admin, "admin")
    demo_id = project_id(engine, DEMO_PROJECT)
    at.selectbox(key="admin_project").set_value(demo_id).run()
    assert at.text_input(key=f"admin_project_name_{demo_id}").value == DEMO_PROJECT
    assert at.number_input(key=f"admin_project_overlap_{demo_id}").value == 2
    assert at.checkbox(key=f"admin_project_reference_{demo_id}").value is False
    assert at.number_input(key=f"admin_project_threshold_{demo_id}").value == pytest.approx(0.7)
    at.number_input(key=f"admin_project_overlap_{demo_id}").set_value(4)
    at.number_input(key=f"admin_project_threshold_{demo_id}").set_value(0.55)
    at = submit(at, "admin_project_form", "Save project")
    assert not errors(at)
    with read_session(engine) as session:
        project = session.get(Project, demo_id)
        assert project is not None
        assert project.overlap == 4
        assert project.name == DEMO_PROJECT
        assert project.is_reference is False
        assert project.duplicate_threshold == pytest.approx(0.55)
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "project", AuditEvent.action == "update")
        ).all()
    assert event.detail["duplicate_threshold"] == pytest.approx(0.55) and event.detail["is_reference"] is False
    assert event.detail["before"] == {"overlap": 2, "duplicate_threshold": 0.7}
    assert at.number_input(key=f"admin_project_threshold_{demo_id}").value == pytest.approx(0.55)


def test_admin_duplicate_project_name_is_refused(as_admin, engine):
    """Test that a new project named like an existing one shows an error naming it and stores nothing."""
    at = open_page(as_admin, "admin")
    at.text_input(key="admin_project_name_new").set_value(DEMO_PROJECT)
    at = submit(at, "admin_project_form", "Save project")
    assert errors(at) == [f"name: a project named {DEMO_PROJECT!r} exists"]
    with read_session(engine) as session:
        assert len(session.exec(select(Project).where(Project.name == DEMO_PROJECT)).all()) == 1


# --- 8. import through the items page ---------------------------------------------------------------


def upload(at: AppTest, project: str, filename: str, data: bytes, **options: Any) -> AppTest:
    at.text_input(key="items_import_project").set_value(project)
    at.file_uploader(key="items_upload").set_value((filename, data, "application/octet-stream"))
    for key, value in options.items():
        at.selectbox(key=f"items_import_{key}").set_value(value)
    return submit(at, "items_import_form", "Import")


def test_curator_imports_a_file_through_the_items_page(as_curator, engine):
    """Test that a curator's upload creates the project, stores the items and lists them on the page."""
    at = open_page(as_curator, "items")
    rows = [healthbench_row(f"upload-{n}", f"Question number {n}?") for n in range(3)]
    at = upload(at, "Uploaded", "three.jsonl", jsonl(*rows), status="approved")
    assert not at.exception
    assert not errors(at)
    assert [s.value for s in at.success] == [
        "3 items added, 0 unchanged, 0 new versions, 0 skipped, 3 criteria, 0 answers."
    ]
    with read_session(engine) as session:
        stored = session.exec(select(Item).where(Item.project_id == project_id(engine, "Uploaded"))).all()
    assert sorted(item.external_id for item in stored) == ["upload-0", "upload-1", "upload-2"]
    assert {item.status for item in stored} == {"approved"}
    at.selectbox(key="items_project").set_value("Uploaded").run()
    assert caption_count(at) == 3

    again = upload(at, "Uploaded", "three.jsonl", jsonl(*rows))
    assert [s.value for s in again.success] == [
        "0 items added, 3 unchanged, 0 new versions, 0 skipped, 0 criteria, 0 answers."
    ]


def test_an_upload_with_a_near_copy_warns_and_flags_it(as_curator, engine):
    """Test that uploading two items of which one nearly copies the other warns on the Items page and that the
    copy shows under "Flagged only"."""
    story = (
        "My father is 78 and takes warfarin for atrial fibrillation. Since yesterday he has had black stools, "
        "feels dizzy when he stands up and looks pale. He says he is fine and does not want to go to the "
        "hospital because it is the weekend. His last INR was checked three weeks ago and was in range. "
        "Can we wait until Monday to call his doctor, or should we do something now?"
    )
    copy = story.replace("My father", "My dad").replace("looks pale", "looks very pale")
    at = open_page(as_curator, "items")
    at = upload(at, "Near copies", "two.jsonl", jsonl(healthbench_row("first", story), healthbench_row("second", copy)))
    assert not at.exception and not errors(at)
    assert [w.value for w in at.warning] == [
        "1 new item(s) nearly copy another item of this project or of a reference set; they are flagged as "
        "possible duplicates (filter: Flagged only)."
    ]
    at.selectbox(key="items_project").set_value("Near copies").run()
    at.checkbox(key="items_filter_flagged").check().run()
    assert caption_count(at) == 1


def test_invalid_upload_stores_nothing_and_lists_problems(as_curator, engine):
    """Test that an upload with a bad row shows the problems and writes no project and no items."""
    at = open_page(as_curator, "items")
    bad = healthbench_row("bad-1", "Hello?")
    bad["rubrics"] = []
    at = upload(at, "Never created", "bad.jsonl", jsonl(healthbench_row("good-1", "Hi?"), bad))
    assert not at.exception
    assert errors(at) == ["Nothing was imported: 1 problem(s) in the file."]
    assert "rubrics" in at.code[0].value
    with read_session(engine) as session:
        assert session.exec(select(Project).where(Project.name == "Never created")).first() is None


def test_import_without_a_file_asks_for_one(as_curator, engine):
    """Test that pressing Import with no file chosen shows an error and creates no project."""
    at = open_page(as_curator, "items")
    at.text_input(key="items_import_project").set_value("Empty import")
    at = submit(at, "items_import_form", "Import")
    assert errors(at) == ["Choose a file to import."]
    with read_session(engine) as session:
        assert session.exec(select(Project).where(Project.name == "Empty import")).first() is None


def test_items_page_pages_through_a_large_project(app, seeded_project, engine):
    """Test that a project with more than 25 items is shown 25 per page and the second page holds the rest."""
    rows = [healthbench_row(f"many-{n:02d}", f"Question {n}?") for n in range(30)]
    with write_session(engine) as session:
        import_items(session, project_name="Many", data=jsonl(*rows), filename="many.jsonl")
    at = open_page(app.sign_in("curator"), "items")
    at.selectbox(key="items_project").set_value("Many").run()
    assert not at.exception
    assert [c.value for c in at.caption if "items match" in c.value] == ["30 items match · page 1 of 2"]
    first = list(at.dataframe[0].value["external_id"])
    assert len(first) == 25
    at.pagination(key="items_page").set_value(2).run()
    assert not at.exception
    assert [c.value for c in at.caption if "items match" in c.value] == ["30 items match · page 2 of 2"]
    second = list(at.dataframe[0].value["external_id"])
    assert len(second) == 5
    assert sorted(first + second) == [f"many-{n:02d}" for n in range(30)]

"""The specialty taxonomy: the pure naming and ordering rules, the admin's use cases on real SQLite (add,
rename everywhere, reorder, deactivate, restore the defaults; all audited), and the Admin page's Specialties
tab through AppTest."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from review import catalog, taxonomy
from review import specialties as admin_specialties
from review.importing import import_items
from review.specialties import SpecialtyError
from storage import users
from storage.db import read_session, write_session
from storage.models import AuditEvent, Item, Specialty, User

PROJECT = "Taxonomy check"


# --- helpers -----------------------------------------------------------------------------------------


def user_id(engine: Engine, username: str) -> int:
    with read_session(engine) as session:
        found = users.get_user_by_username(session=session, username=username)
        assert found is not None and found.id is not None
        return found.id


def specialty_id(engine: Engine, name: str) -> int:
    with read_session(engine) as session:
        found = session.exec(select(Specialty).where(Specialty.name == name)).one()
        assert found.id is not None
        return found.id


def names(engine: Engine, *, active_only: bool = False) -> list[str]:
    with read_session(engine) as session:
        return users.list_specialties(session=session, active_only=active_only)


def events(engine: Engine, action: str) -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def user_specialties(engine: Engine, username: str) -> list[str]:
    with read_session(engine) as session:
        return list(session.exec(select(User).where(User.username == username)).one().specialties)


def healthbench(prompt_id: str, criterion: str, specialties: list[str]) -> bytes:
    row = {
        "prompt_id": prompt_id,
        "prompt": [{"role": "user", "content": "I get chest pain when I climb stairs. Should I worry?"}],
        "rubrics": [{"criterion": criterion, "points": 8, "tags": ["level:example", "axis:accuracy"]}],
        "example_tags": ["theme:emergency_referrals"],
        "specialties": specialties,
    }
    return (json.dumps(row) + "\n").encode()


def import_two_versions(engine: Engine, admin_id: int) -> None:
    """An item "chest-1" in PROJECT with two versions, both listing Cardiology, and "skin-1" with Dermatology."""
    with write_session(engine) as session:
        first = healthbench("chest-1", "Advises urgent evaluation for exertional chest pain.", ["Cardiology"])
        skin = healthbench("skin-1", "Asks about the rash's duration.", ["Dermatology"])
        import_items(session, project_name=PROJECT, data=first + skin, filename="v1.jsonl", actor_id=admin_id)
    with write_session(engine) as session:
        import_items(
            session,
            project_name=PROJECT,
            data=second_version(),
            filename="v2.jsonl",
            on_conflict="new-version",
            actor_id=admin_id,
        )


def second_version() -> bytes:
    return healthbench(
        "chest-1", "Advises same-day evaluation for exertional chest pain.", ["Cardiology", "Geriatrics"]
    )


def chest_versions(engine: Engine) -> list[Item]:
    with read_session(engine) as session:
        query = select(Item).where(Item.external_id == "chest-1").order_by(Item.version)  # type: ignore[arg-type]
        return list(session.exec(query).all())


# --- pure rules --------------------------------------------------------------------------------------


def test_names_are_cleaned_and_bad_names_refused_with_the_reason():
    """Test that a name is trimmed with inner spaces collapsed, and empty, too long, quoted or control-character
    names are refused saying why."""
    assert taxonomy.clean_specialty_name("  Sports   Medicine ") == "Sports Medicine"
    cases = {
        "   ": "Name: write the specialty's name; it is empty.",
        "x" * 121: "Name: at most 120 characters; this one has 121. Shorten it.",
        'The "best" one': 'Name: leave out quotation marks ("), backslashes (\\) and control characters.',
        "Back\\slash": 'Name: leave out quotation marks ("), backslashes (\\) and control characters.',
        "Bell\x07": 'Name: leave out quotation marks ("), backslashes (\\) and control characters.',
    }
    for name, message in cases.items():
        with pytest.raises(SpecialtyError) as refused:
            taxonomy.clean_specialty_name(name)
        assert str(refused.value) == message
    assert taxonomy.clean_specialty_name("x" * 120) == "x" * 120


def test_taken_renamed_moved_and_missing_defaults():
    """Test the pure rules: duplicates ignore case (but a specialty may change its own case), renaming keeps the
    place and each name once, moving stays within the list, and missing defaults keep the default order."""
    assert taxonomy.taken_by("cardiology", ["Cardiology", "Urology"]) == "Cardiology"
    assert taxonomy.taken_by("CARDIOLOGY", ["Cardiology"], ignoring="Cardiology") is None
    assert taxonomy.taken_by("Neurology", ["Cardiology"]) is None
    assert taxonomy.renamed_in(["Pediatrics", "Cardiology", "Urology"], "Cardiology", "Heart") == [
        "Pediatrics",
        "Heart",
        "Urology",
    ]
    assert taxonomy.renamed_in(["Cardiology", "Heart"], "Cardiology", "Heart") == ["Heart"]
    assert taxonomy.moved([1, 2, 3], 2, -1) == [2, 1, 3]
    assert taxonomy.moved([1, 2, 3], 2, 1) == [1, 3, 2]
    assert taxonomy.moved([1, 2, 3], 1, -1) == [1, 2, 3]
    assert taxonomy.moved([1, 2, 3], 3, 1) == [1, 2, 3]
    missing = taxonomy.missing_defaults([n.lower() for n in taxonomy.DEFAULT_SPECIALTIES if n != "Urology"])
    assert missing == ["Urology"]
    assert taxonomy.missing_defaults([]) == list(taxonomy.DEFAULT_SPECIALTIES)


# --- use cases on SQLite -----------------------------------------------------------------------------


def test_add_puts_an_active_specialty_last_and_audits_it(engine, seeded_project):
    """Test that adding a specialty stores it trimmed, active and last, audited with who and where."""
    admin = user_id(engine, "admin")
    before = names(engine)
    with write_session(engine) as session:
        new_id = admin_specialties.add_specialty(session, name="  Sports   Medicine ", actor_id=admin)
    assert names(engine) == [*before, "Sports Medicine"]
    with read_session(engine) as session:
        rows = admin_specialties.specialty_rows(session)
    assert rows[-1] == admin_specialties.SpecialtyRow(new_id, len(before) + 1, "Sports Medicine", True)
    [event] = events(engine, "specialty.add")
    assert (event.actor_id, event.entity, event.entity_id) == (admin, "specialty", new_id)
    assert event.detail == {"name": "Sports Medicine", "place": len(before) + 1}


def test_add_refuses_empty_long_and_duplicate_names(engine, seeded_project):
    """Test that an empty, too long, or case-insensitively taken name (active or inactive) is refused with a
    clear message and nothing is stored or audited."""
    admin = user_id(engine, "admin")
    with write_session(engine) as session:
        admin_specialties.set_specialty_active(
            session, specialty_id=specialty_id(engine, "Urology"), active=False, actor_id=admin
        )
    before = names(engine)
    cases = {
        "": "Name: write the specialty's name; it is empty.",
        "y" * 130: "Name: at most 120 characters; this one has 130. Shorten it.",
        " cardiology ": 'Name: "Cardiology" is in the list already (names are compared ignoring case).',
        "UROLOGY": 'Name: "Urology" is in the list already, inactive; reactivate it instead of adding it again.',
    }
    for name, message in cases.items():
        with write_session(engine) as session, pytest.raises(SpecialtyError) as refused:
            admin_specialties.add_specialty(session, name=name, actor_id=admin)
        assert str(refused.value) == message
    assert names(engine) == before
    assert events(engine, "specialty.add") == []


def test_only_an_admin_may_change_the_list(engine, seeded_project):
    """Test that a curator's change is refused and changes nothing."""
    curator = user_id(engine, "curator")
    cardiology = specialty_id(engine, "Cardiology")
    attempts = [
        lambda s: admin_specialties.add_specialty(s, name="Sports Medicine", actor_id=curator),
        lambda s: admin_specialties.rename_specialty(s, specialty_id=cardiology, new_name="Heart", actor_id=curator),
        lambda s: admin_specialties.move_specialty(s, specialty_id=cardiology, step=-1, actor_id=curator),
        lambda s: admin_specialties.set_specialty_active(s, specialty_id=cardiology, active=False, actor_id=curator),
        lambda s: admin_specialties.restore_default_specialties(s, actor_id=curator),
    ]
    before = names(engine)
    for attempt in attempts:
        with write_session(engine) as session, pytest.raises(SpecialtyError) as refused:
            attempt(session)
        assert str(refused.value) == "Only an administrator can change the list of specialties."
    assert names(engine) == before


def test_rename_rewrites_people_and_every_item_version(engine, seeded_project):
    """Test that renaming Cardiology rewrites the name on people and on every version of every item that has it,
    keeps the other names and the content hash, audits the ids, and the Items filter finds the items by it."""
    admin = user_id(engine, "admin")
    import_two_versions(engine, admin)
    hashes = [v.content_hash for v in chest_versions(engine)]
    project = chest_versions(engine)[0].project_id
    with read_session(engine) as session:
        demo_ids = [
            i.id for i in session.exec(select(Item)).all() if i.project_id != project and "Cardiology" in i.specialties
        ]
    assert demo_ids  # the demo project lists Cardiology on some items
    cardiology = specialty_id(engine, "Cardiology")
    with write_session(engine) as session:
        report = admin_specialties.rename_specialty(
            session, specialty_id=cardiology, new_name=" Cardiovascular  Medicine ", actor_id=admin
        )
    assert report == admin_specialties.RenameReport("Cardiology", "Cardiovascular Medicine", 1, len(demo_ids) + 2)
    assert "Cardiology" not in names(engine)
    assert names(engine).index("Cardiovascular Medicine") == taxonomy.DEFAULT_SPECIALTIES.index("Cardiology")
    assert user_specialties(engine, "dr.lindqvist") == ["Cardiovascular Medicine", "Endocrinology"]
    first, second = chest_versions(engine)
    assert first.specialties == ["Cardiovascular Medicine"]
    assert second.specialties == ["Cardiovascular Medicine", "Geriatrics"]
    assert [first.content_hash, second.content_hash] == hashes
    with read_session(engine) as session:
        for item_id in demo_ids:
            item = session.get(Item, item_id)
            assert item is not None and "Cardiology" not in item.specialties
            assert "Cardiovascular Medicine" in item.specialties
        rows, total = catalog.item_page(session, project_id=first.project_id, specialty="Cardiovascular Medicine")
        assert [r.external_id for r in rows] == ["chest-1"] and total == 1
        assert catalog.item_page(session, project_id=first.project_id, specialty="Cardiology") == ([], 0)
    [event] = events(engine, "specialty.rename")
    assert (event.actor_id, event.entity_id) == (admin, cardiology)
    assert event.detail["before"] == "Cardiology" and event.detail["after"] == "Cardiovascular Medicine"
    assert event.detail["user_ids"] == [user_id(engine, "dr.lindqvist")]
    assert sorted(event.detail["item_ids"]) == sorted([*demo_ids, first.id, second.id])
    # the source file still imports as unchanged: the hash stands for the item as imported
    with write_session(engine) as session:
        again = import_items(
            session, project_name=PROJECT, data=second_version(), filename="v2.jsonl", on_conflict="new-version"
        )
    assert again.items_unchanged == 1 and len(chest_versions(engine)) == 2


def test_rename_refuses_taken_unchanged_and_bad_names_but_allows_a_change_of_case(engine, seeded_project):
    """Test that renaming to another specialty's name (any case), to the same name, or to an empty name is
    refused with nothing changed, while changing only the case is allowed and rewrites people."""
    admin = user_id(engine, "admin")
    cardiology = specialty_id(engine, "Cardiology")
    cases = {
        "urology": 'New name: "Urology" is in the list already (names are compared ignoring case).',
        "Cardiology": 'New name: "Cardiology" is already this specialty\'s name; write a different one.',
        " ": "Name: write the specialty's name; it is empty.",
    }
    for name, message in cases.items():
        with write_session(engine) as session, pytest.raises(SpecialtyError) as refused:
            admin_specialties.rename_specialty(session, specialty_id=cardiology, new_name=name, actor_id=admin)
        assert str(refused.value) == message
    assert user_specialties(engine, "dr.lindqvist") == ["Cardiology", "Endocrinology"]
    assert events(engine, "specialty.rename") == []
    with write_session(engine) as session:
        admin_specialties.rename_specialty(session, specialty_id=cardiology, new_name="CARDIOLOGY", actor_id=admin)
    assert "CARDIOLOGY" in names(engine) and "Cardiology" not in names(engine)
    assert user_specialties(engine, "dr.lindqvist") == ["CARDIOLOGY", "Endocrinology"]


def test_move_up_and_down_changes_the_order_and_stops_at_the_ends(engine, seeded_project):
    """Test that moving a specialty swaps it with its neighbour, is audited with both places, and does nothing
    (and records nothing) at either end."""
    admin = user_id(engine, "admin")
    order = names(engine)
    second = order[1]
    with write_session(engine) as session:
        assert admin_specialties.move_specialty(
            session, specialty_id=specialty_id(engine, second), step=-1, actor_id=admin
        )
    assert names(engine) == [second, order[0], *order[2:]]
    with write_session(engine) as session:
        assert not admin_specialties.move_specialty(
            session, specialty_id=specialty_id(engine, second), step=-1, actor_id=admin
        )
        assert not admin_specialties.move_specialty(
            session, specialty_id=specialty_id(engine, order[-1]), step=1, actor_id=admin
        )
        assert admin_specialties.move_specialty(
            session, specialty_id=specialty_id(engine, second), step=1, actor_id=admin
        )
    assert names(engine) == order
    moves = events(engine, "specialty.move")
    assert [(e.detail["name"], e.detail["before"], e.detail["after"]) for e in moves] == [
        (second, 2, 1),
        (second, 1, 2),
    ]


def test_deactivated_specialties_leave_pickers_but_stay_on_people_and_items(engine, seeded_project):
    """Test that a deactivated specialty is no longer offered by catalog.list_specialties, stays on people and
    items, is audited, and comes back in its place when reactivated."""
    admin = user_id(engine, "admin")
    cardiology = specialty_id(engine, "Cardiology")
    offered = names(engine, active_only=True)
    with write_session(engine) as session:
        assert admin_specialties.set_specialty_active(session, specialty_id=cardiology, active=False, actor_id=admin)
        assert not admin_specialties.set_specialty_active(
            session, specialty_id=cardiology, active=False, actor_id=admin
        )
    with read_session(engine) as session:
        assert catalog.list_specialties(session) == [n for n in offered if n != "Cardiology"]
        rows = {r.name: r for r in admin_specialties.specialty_rows(session)}
        assert not rows["Cardiology"].active
    assert "Cardiology" in user_specialties(engine, "dr.lindqvist")
    with write_session(engine) as session:
        assert admin_specialties.set_specialty_active(session, specialty_id=cardiology, active=True, actor_id=admin)
    with read_session(engine) as session:
        assert catalog.list_specialties(session) == offered
    assert [e.detail for e in events(engine, "specialty.deactivate")] == [
        {"name": "Cardiology", "before": {"active": True}, "after": {"active": False}}
    ]
    assert len(events(engine, "specialty.reactivate")) == 1


def test_restore_adds_only_the_missing_defaults(engine, seeded_project):
    """Test that restoring the defaults adds back the renamed-away default at the end, leaves an inactive default
    inactive, is audited, and the second time adds nothing and records nothing."""
    admin = user_id(engine, "admin")
    with write_session(engine) as session:
        admin_specialties.rename_specialty(
            session, specialty_id=specialty_id(engine, "Urology"), new_name="Urology and Andrology", actor_id=admin
        )
        admin_specialties.set_specialty_active(
            session, specialty_id=specialty_id(engine, "Surgery"), active=False, actor_id=admin
        )
    with read_session(engine) as session:
        assert admin_specialties.missing_default_specialties(session) == ["Urology"]
    with write_session(engine) as session:
        assert admin_specialties.restore_default_specialties(session, actor_id=admin) == ["Urology"]
    assert names(engine)[-1] == "Urology"
    assert "Surgery" not in names(engine, active_only=True)
    with write_session(engine) as session:
        assert admin_specialties.restore_default_specialties(session, actor_id=admin) == []
    assert [e.detail for e in events(engine, "specialty.restore_defaults")] == [{"added": ["Urology"]}]


def test_specialties_given_to_people_do_not_duplicate_the_list_by_case(engine, seeded_project):
    """Test that storage.users.add_specialties skips names already listed in another case and adds new ones at
    the end, after any reordering."""
    with write_session(engine) as session:
        added = users.add_specialties(session=session, names=["cardiology", "Sports Medicine", "SPORTS MEDICINE"])
    assert added == 1
    listed = names(engine)
    assert listed[-1] == "Sports Medicine" and "cardiology" not in listed


# --- the Admin page's Specialties tab ------------------------------------------------------------------


def open_admin(at: AppTest) -> AppTest:
    return at.switch_page("pages/admin.py").run()


def specialty_table(at: AppTest) -> pd.DataFrame:
    [table] = [frame.value for frame in at.dataframe if list(frame.value.columns) == ["place", "specialty", "active"]]
    return table


def choose(at: AppTest, engine: Engine, name: str) -> AppTest:
    return at.selectbox(key="admin_specialty_choice").set_value(specialty_id(engine, name)).run()


def messages(at: AppTest, kind: str) -> list[str]:
    return [str(m.value) for m in getattr(at, kind)]


def test_admin_tab_adds_a_specialty_and_refuses_a_duplicate(as_admin, engine):
    """Test that the Specialties tab adds a specialty (stored last, shown in the table, form emptied) and shows
    the reason when the name is taken in another case."""
    at = open_admin(as_admin)
    assert not at.exception
    assert list(specialty_table(at)["specialty"]) == names(engine)
    at.text_input(key="admin_specialty_new_name").set_value("Sports Medicine")
    at = at.button(key="FormSubmitter:admin_specialty_add_form-Add specialty").click().run()
    assert not at.exception and not at.error
    assert messages(at, "success") == ["Added the specialty Sports Medicine."]
    assert names(engine)[-1] == "Sports Medicine"
    table = specialty_table(at)
    assert table.iloc[-1].to_dict() == {"place": len(names(engine)), "specialty": "Sports Medicine", "active": True}
    assert at.text_input(key="admin_specialty_new_name").value == ""
    at.text_input(key="admin_specialty_new_name").set_value("SPORTS medicine")
    at = at.button(key="FormSubmitter:admin_specialty_add_form-Add specialty").click().run()
    assert messages(at, "error") == [
        'Name: "Sports Medicine" is in the list already (names are compared ignoring case).'
    ]
    assert [n for n in names(engine) if n.lower() == "sports medicine"] == ["Sports Medicine"]


def test_admin_tab_renames_a_specialty_everywhere(as_admin, engine):
    """Test that renaming through the tab renames it in the list, on the physician who had it and on the demo
    items, and says how many it changed."""
    at = choose(open_admin(as_admin), engine, "Cardiology")
    cardiology = specialty_id(engine, "Cardiology")
    assert at.text_input(key=f"admin_specialty_rename_{cardiology}").value == "Cardiology"
    at.text_input(key=f"admin_specialty_rename_{cardiology}").set_value("Cardiovascular Medicine")
    at = at.button(key="FormSubmitter:admin_specialty_rename_form-Rename").click().run()
    assert not at.exception and not at.error
    with read_session(engine) as session:
        items_with_it = [i for i in session.exec(select(Item)).all() if "Cardiovascular Medicine" in i.specialties]
    assert items_with_it
    assert messages(at, "success") == [
        f"Renamed Cardiology to Cardiovascular Medicine (on 1 people and {len(items_with_it)} item versions)."
    ]
    assert "Cardiovascular Medicine" in list(specialty_table(at)["specialty"])
    assert "Cardiology" not in list(specialty_table(at)["specialty"])
    assert user_specialties(engine, "dr.lindqvist") == ["Cardiovascular Medicine", "Endocrinology"]


def test_admin_tab_moves_a_specialty_up_and_down(as_admin, engine):
    """Test that Move up and Move down reorder the list and the table, and Move up is disabled for the first."""
    order = names(engine)
    at = choose(open_admin(as_admin), engine, order[1])
    at = at.button(key="admin_specialty_up").click().run()
    assert not at.exception
    assert messages(at, "success") == [f"Moved {order[1]} up."]
    assert names(engine)[:2] == [order[1], order[0]]
    assert list(specialty_table(at)["specialty"])[:2] == [order[1], order[0]]
    assert at.button(key="admin_specialty_up").disabled
    at = at.button(key="admin_specialty_down").click().run()
    assert names(engine) == order
    assert list(specialty_table(at)["specialty"]) == order


def test_admin_tab_deactivates_and_the_items_filter_stops_offering_it(as_admin, engine):
    """Test that Deactivate marks the specialty inactive in the table, the Items filter and the new-person picker
    stop offering it, the physician who had it keeps it, and Reactivate brings it back."""
    at = choose(open_admin(as_admin), engine, "Cardiology")
    at = at.button(key="admin_specialty_active").click().run()
    assert not at.exception
    assert messages(at, "success") == ["Deactivated Cardiology."]
    table = specialty_table(at)
    assert not bool(table[table["specialty"] == "Cardiology"]["active"].iloc[0])
    assert "Cardiology" not in at.multiselect(key="admin_new_specialties").options
    lindqvist = user_id(engine, "dr.lindqvist")
    at = at.selectbox(key="admin_edit_user").set_value(lindqvist).run()
    assert "Cardiology" in at.multiselect(key=f"admin_edit_specialties_{lindqvist}").value
    assert user_specialties(engine, "dr.lindqvist") == ["Cardiology", "Endocrinology"]
    assert at.button(key="admin_specialty_active").label == "Reactivate"

    items = at.switch_page("pages/items.py").run()
    offered = items.selectbox(key="items_filter_specialty").options
    assert "Cardiology" not in offered and "Endocrinology" in offered

    at = open_admin(items)
    at = choose(at, engine, "Cardiology")
    at = at.button(key="admin_specialty_active").click().run()
    assert messages(at, "success") == ["Reactivated Cardiology."]
    items = at.switch_page("pages/items.py").run()
    assert "Cardiology" in items.selectbox(key="items_filter_specialty").options


def test_admin_tab_restores_missing_defaults(as_admin, engine):
    """Test that the tab lists the default missing after a rename and the restore button adds it back."""
    admin = user_id(engine, "admin")
    with write_session(engine) as session:
        admin_specialties.rename_specialty(
            session, specialty_id=specialty_id(engine, "Urology"), new_name="Urology and Andrology", actor_id=admin
        )
    at = open_admin(as_admin)
    assert "Urology" in messages(at, "text")
    at = at.button(key="admin_specialty_restore").click().run()
    assert not at.exception
    assert messages(at, "success") == ["Restored the missing defaults: Urology."]
    assert names(engine)[-1] == "Urology"
    assert "Every default specialty is in the list." in messages(at, "caption")

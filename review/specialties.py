"""Use cases for the specialty taxonomy an admin edits: add, rename, reorder, deactivate, restore the defaults.

Only an active admin may change the list, and every change is audited (entity "specialty"). Names are unique
ignoring case. An inactive specialty is no longer offered in pickers (`review.catalog.list_specialties` lists
active ones only) but stays on the people and items that have it.

Renaming rewrites the name in every person's and every item version's specialties list (in all projects), so
routing by specialty and the Items filter keep working. An item version's content hash is left as it was: it
stands for the item as it was imported or written, so that re-importing the same source file still changes
nothing (a new hash would make that file a conflict or a new version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from review import taxonomy
from review.taxonomy import SpecialtyError
from storage import audit, users
from storage.models import Specialty

__all__ = [
    "RenameReport",
    "SpecialtyError",
    "SpecialtyRow",
    "add_specialty",
    "missing_default_specialties",
    "move_specialty",
    "rename_specialty",
    "restore_default_specialties",
    "set_specialty_active",
    "specialty_rows",
]


@dataclass(frozen=True)
class SpecialtyRow:
    """One specialty as the admin sees it: its place in the list (1-based), name and whether it is offered."""

    specialty_id: int
    place: int
    name: str
    active: bool


@dataclass(frozen=True)
class RenameReport:
    """What a rename changed: the names, and how many people and item versions now carry the new name."""

    before: str
    after: str
    users: int
    item_versions: int


def specialty_rows(session: Session) -> list[SpecialtyRow]:
    """Every specialty, active or not, in the taxonomy's order. Read-only."""
    return [
        SpecialtyRow(specialty_id=int(s.id or 0), place=place, name=s.name, active=s.active)
        for place, s in enumerate(users.list_specialty_rows(session=session), start=1)
    ]


def missing_default_specialties(session: Session) -> list[str]:
    """The default specialties that are not in the list (ignoring case), in the default order. Read-only."""
    return taxonomy.missing_defaults([s.name for s in users.list_specialty_rows(session=session)])


def add_specialty(session: Session, *, name: str, actor_id: int) -> int:
    """Add an active specialty at the end of the list; SpecialtyError for an empty, too long or taken name.
    Audited. Flushes."""
    _check_admin(session, actor_id)
    cleaned = taxonomy.clean_specialty_name(name)
    rows = users.list_specialty_rows(session=session)
    taken = taxonomy.taken_by(cleaned, [s.name for s in rows])
    if taken is not None:
        raise SpecialtyError(_taken_message("Name", taken, rows))
    specialty = users.add_specialty(session=session, name=cleaned)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="specialty.add",
        entity="specialty",
        entity_id=specialty.id,
        detail={"name": cleaned, "place": len(rows) + 1},
    )
    return int(specialty.id or 0)


def rename_specialty(session: Session, *, specialty_id: int, new_name: str, actor_id: int) -> RenameReport:
    """Rename a specialty and write the new name into every person's and item version's specialties list;
    SpecialtyError for a name that is empty, too long, unchanged or taken by another specialty. Audited.
    Flushes."""
    _check_admin(session, actor_id)
    specialty = _specialty(session, specialty_id)
    old = specialty.name
    cleaned = taxonomy.clean_specialty_name(new_name)
    if cleaned == old:
        raise SpecialtyError(f'New name: "{old}" is already this specialty\'s name; write a different one.')
    rows = users.list_specialty_rows(session=session)
    taken = taxonomy.taken_by(cleaned, [s.name for s in rows], ignoring=old)
    if taken is not None:
        raise SpecialtyError(_taken_message("New name", taken, rows))
    users.update_specialty(session=session, specialty_id=specialty_id, name=cleaned)
    changed: dict[str, list[int]] = {}
    for holder in users.SPECIALTY_HOLDERS:
        lists = users.specialty_lists_holding(session=session, name=old, holder=holder)
        users.set_specialty_lists(
            session=session,
            holder=holder,
            lists=[(row_id, taxonomy.renamed_in(names, old, cleaned)) for row_id, names in lists],
        )
        changed[holder] = [row_id for row_id, _ in lists]
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="specialty.rename",
        entity="specialty",
        entity_id=specialty_id,
        detail={"before": old, "after": cleaned, "user_ids": changed["user"], "item_ids": changed["item"]},
    )
    return RenameReport(before=old, after=cleaned, users=len(changed["user"]), item_versions=len(changed["item"]))


def move_specialty(session: Session, *, specialty_id: int, step: int, actor_id: int) -> bool:
    """Move a specialty `step` places (-1 up, +1 down) in the list; False (and nothing recorded) when it is
    already first or last. Audited. Flushes."""
    _check_admin(session, actor_id)
    specialty = _specialty(session, specialty_id)
    order = [int(s.id or 0) for s in users.list_specialty_rows(session=session)]
    new_order = taxonomy.moved(order, specialty_id, step)
    if new_order == order:
        return False
    users.set_specialty_order(session=session, specialty_ids=new_order)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="specialty.move",
        entity="specialty",
        entity_id=specialty_id,
        detail={
            "name": specialty.name,
            "before": order.index(specialty_id) + 1,
            "after": new_order.index(specialty_id) + 1,
        },
    )
    return True


def set_specialty_active(session: Session, *, specialty_id: int, active: bool, actor_id: int) -> bool:
    """Deactivate a specialty (no longer offered; people and items keep it) or reactivate it; False (and
    nothing recorded) when it is so already. Audited. Flushes."""
    _check_admin(session, actor_id)
    specialty = _specialty(session, specialty_id)
    if specialty.active == active:
        return False
    users.update_specialty(session=session, specialty_id=specialty_id, active=active)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="specialty.reactivate" if active else "specialty.deactivate",
        entity="specialty",
        entity_id=specialty_id,
        detail={"name": specialty.name, "before": {"active": not active}, "after": {"active": active}},
    )
    return True


def restore_default_specialties(session: Session, *, actor_id: int) -> list[str]:
    """Add the default specialties missing from the list (ignoring case) at its end, active; return their names
    (none: nothing recorded). Inactive defaults stay inactive. Audited. Flushes."""
    _check_admin(session, actor_id)
    missing = missing_default_specialties(session)
    if not missing:
        return []
    users.add_specialties(session=session, names=missing)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="specialty.restore_defaults",
        entity="specialty",
        detail={"added": missing},
    )
    return missing


def _check_admin(session: Session, actor_id: int) -> None:
    actor = users.get_user(session=session, user_id=actor_id)
    if actor is None or actor.role != "admin" or not actor.active:
        raise SpecialtyError("Only an administrator can change the list of specialties.")


def _specialty(session: Session, specialty_id: int) -> Specialty:
    specialty = users.get_specialty(session=session, specialty_id=specialty_id)
    if specialty is None:
        raise SpecialtyError("That specialty no longer exists; reload the page.")
    return specialty


def _taken_message(field: str, taken: str, rows: Sequence[Specialty]) -> str:
    if any(s.name == taken and not s.active for s in rows):
        return f'{field}: "{taken}" is in the list already, inactive; reactivate it instead of adding it again.'
    return f'{field}: "{taken}" is in the list already (names are compared ignoring case).'

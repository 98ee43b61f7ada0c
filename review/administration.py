"""Use cases for the admin screen: the people list and project settings (the specialty list: review/specialties.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from review import duplicates
from review.accounts import AccountError
from storage import audit, projects, users

GOLD_POLICIES = ("unanimous", "majority", "adjudicate")


@dataclass(frozen=True)
class UserRow:
    user_id: int
    username: str
    display_name: str
    role: str
    specialties: str
    active: bool
    last_sign_in: str


def user_rows(session: Session) -> list[UserRow]:
    """People who can sign in, for the admin table (no password hashes). Read-only."""
    return [
        UserRow(
            user_id=u.id or 0,
            username=u.username,
            display_name=u.display_name,
            role=u.role,
            specialties=", ".join(u.specialties),
            active=u.active,
            last_sign_in=u.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if u.last_sign_in_at else "never",
        )
        for u in users.list_users(session=session)
    ]


def check_project_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate project settings; raise AccountError naming the field. Read-only."""
    clean = dict(settings)
    if "name" in clean:
        clean["name"] = str(clean["name"]).strip()
        if not clean["name"]:
            raise AccountError("name: the project needs a name")
    if "overlap" in clean and not 1 <= int(clean["overlap"]) <= 20:
        raise AccountError("overlap: between 1 and 20 physicians per answer")
    if "lease_minutes" in clean and not 1 <= int(clean["lease_minutes"]) <= 24 * 60:
        raise AccountError("lease_minutes: between 1 minute and 24 hours")
    if "compare_columns" in clean and not 2 <= int(clean["compare_columns"]) <= 4:
        raise AccountError("compare_columns: between 2 and 4 answers side by side")
    if "gold_policy" in clean and clean["gold_policy"] not in GOLD_POLICIES:
        raise AccountError(f"gold_policy: one of {', '.join(GOLD_POLICIES)}")
    if "gold_min_labels" in clean and not 1 <= int(clean["gold_min_labels"]) <= 20:
        raise AccountError("gold_min_labels: between 1 and 20")
    if "is_reference" in clean and not isinstance(clean["is_reference"], bool):
        raise AccountError("is_reference: true or false (whether the project is a reference set)")
    if "duplicate_threshold" in clean:
        clean["duplicate_threshold"] = _threshold(clean["duplicate_threshold"])
    return clean


def _threshold(value: Any) -> float:
    """The near-duplicate threshold as a float in (0, 1], or AccountError."""
    message = "duplicate_threshold: a number greater than 0 and at most 1, such as 0.7"
    if isinstance(value, bool):
        raise AccountError(message)
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise AccountError(message) from None
    if not math.isfinite(threshold) or not 0 < threshold <= 1:
        raise AccountError(message)
    return threshold


def create_project(session: Session, *, actor_id: int, **settings: Any) -> int:
    """Create a project with its settings; audited. Flushes."""
    clean = check_project_settings(settings)
    if projects.get_project_by_name(session=session, name=clean["name"]) is not None:
        raise AccountError(f"name: a project named {clean['name']!r} exists")
    project = projects.add_project(session=session, created_by=actor_id, **clean)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="create",
        entity="project",
        entity_id=project.id,
        project_id=project.id,
        detail=clean,
    )
    assert project.id is not None
    return project.id


def update_project_settings(session: Session, *, project_id: int, actor_id: int, **settings: Any) -> None:
    """Change a project's settings; audited with the values before. Making it a reference set checks the other
    projects' items against it (review.duplicates.set_reference), which commits; otherwise flushes."""
    clean = check_project_settings(settings)
    if "name" in clean:
        other = projects.get_project_by_name(session=session, name=clean["name"])
        if other is not None and other.id != project_id:
            raise AccountError(f"name: a project named {clean['name']!r} exists")
    current = projects.get_project(session=session, project_id=project_id)
    if current is None:
        raise AccountError(f"project: no project with id {project_id}")
    before = {field: getattr(current, field, None) for field in clean}
    before = {field: value for field, value in before.items() if value != clean[field]}
    projects.update_project(session=session, project_id=project_id, **clean)
    audit.add_audit_event(
        session=session,
        actor_id=actor_id,
        action="update",
        entity="project",
        entity_id=project_id,
        project_id=project_id,
        detail={**clean, "before": before},
    )
    if "is_reference" in before:
        # the flags that follow: copies of its items flagged in other projects, or those flags resolved
        duplicates.after_reference_change(
            session, project_id=project_id, is_reference=bool(clean["is_reference"]), actor_id=actor_id
        )

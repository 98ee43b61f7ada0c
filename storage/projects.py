"""Repository functions for projects and their settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from storage.models import Project


def get_project(*, session: Session, project_id: int) -> Project | None:
    """Return the project with this id, or None. Read-only."""
    return session.get(Project, project_id)


def get_project_by_name(*, session: Session, name: str) -> Project | None:
    """Return the project with this name, or None. Read-only."""
    return session.exec(select(Project).where(Project.name == name)).first()


def list_projects(*, session: Session, include_archived: bool = False) -> Sequence[Project]:
    """List projects by name. Read-only."""
    query = select(Project).order_by(col(Project.name))
    if not include_archived:
        query = query.where(Project.archived == False)  # noqa: E712
    return session.exec(query).all()


def add_project(*, session: Session, name: str, created_by: int | None = None, **settings: Any) -> Project:
    """Insert a project and flush to get its id."""
    project = Project(name=name, created_by=created_by, **settings)
    session.add(project)
    session.flush()
    return project


def update_project(*, session: Session, project_id: int, **changes: Any) -> Project:
    """Change a project's settings."""
    project = session.get(Project, project_id)
    if project is None:
        raise LookupError(f"no project with id {project_id}")
    for name, value in changes.items():
        setattr(project, name, value)
    session.add(project)
    session.flush()
    return project

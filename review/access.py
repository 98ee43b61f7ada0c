"""Which screens each role may open. Pure; app.py builds st.navigation from this."""

from __future__ import annotations

# screen name → roles allowed, in the order the navigation lists them
SCREENS: dict[str, tuple[str, ...]] = {
    "home": ("annotator", "curator", "admin"),
    "grade": ("annotator", "curator"),
    "compare": ("annotator", "curator"),
    "review_items": ("annotator", "curator"),
    "my_work": ("annotator", "curator"),
    "items": ("annotator", "curator", "admin"),
    "edit_item": ("annotator", "curator", "admin"),
    "oversight": ("curator", "admin"),
    "adjudicate": ("curator", "admin"),
    "agreement": ("curator", "admin"),
    "runs": ("curator", "admin"),
    "judge": ("curator", "admin"),
    "leaderboard": ("curator", "admin"),
    "exports": ("curator", "admin"),
    "admin": ("admin",),
}

CAN_IMPORT = ("curator", "admin")


def screens_for(role: str) -> list[str]:
    """The screens a role sees, in navigation order. Read-only."""
    return [name for name, roles in SCREENS.items() if role in roles]


def may_open(role: str, screen: str) -> bool:
    """True when the role may open the screen. Read-only."""
    return role in SCREENS.get(screen, ())


def may_import(role: str) -> bool:
    """True when the role may import items and answers. Read-only."""
    return role in CAN_IMPORT

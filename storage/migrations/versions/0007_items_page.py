"""Items page at scale: indexes that page a project's current items in id order and filter them by kind,
status and dimension without reading the rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00.000000
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_item_project_current_id", "item", ["project_id", "is_current", "id"], unique=False)
    op.create_index(
        "ix_item_project_kind", "item", ["project_id", "is_current", "kind", "status", "dimension"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_item_project_kind", table_name="item")
    op.drop_index("ix_item_project_current_id", table_name="item")

"""Curation: reference projects and a duplicate threshold, item change notes, criterion lineage and
acceptance, MinHash signatures and duplicate flags

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_reference", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("duplicate_threshold", sa.Float(), server_default="0.7", nullable=False))

    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_note", sa.Text(), nullable=True))

    with op.batch_alter_table("criterion", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_criterion_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("accepted_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_criterion_previous_criterion", "criterion", ["previous_criterion_id"], ["id"])
        batch_op.create_foreign_key("fk_criterion_accepted_by_user", "user", ["accepted_by"], ["id"])

    op.create_table(
        "itemsignature",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("shingles", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index("ix_itemsignature_project", "itemsignature", ["project_id", "item_id"], unique=False)

    op.create_table(
        "duplicateflag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("match_item_id", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["decided_by"], ["user.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["match_item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "match_item_id"),
    )
    op.create_index("ix_duplicateflag_item_id", "duplicateflag", ["item_id"], unique=False)
    op.create_index("ix_duplicateflag_project_status", "duplicateflag", ["project_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_duplicateflag_project_status", table_name="duplicateflag")
    op.drop_index("ix_duplicateflag_item_id", table_name="duplicateflag")
    op.drop_table("duplicateflag")
    op.drop_index("ix_itemsignature_project", table_name="itemsignature")
    op.drop_table("itemsignature")

    with op.batch_alter_table("criterion", schema=None) as batch_op:
        batch_op.drop_constraint("fk_criterion_accepted_by_user", type_="foreignkey")
        batch_op.drop_constraint("fk_criterion_previous_criterion", type_="foreignkey")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("accepted_by")
        batch_op.drop_column("previous_criterion_id")

    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("change_note")

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("duplicate_threshold")
        batch_op.drop_column("is_reference")

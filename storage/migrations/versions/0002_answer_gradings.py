"""Answer.gradings: physicians' submitted gradings per answer, indexed for "next answer"

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gradings", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_answer_gradings", ["gradings", "id"], unique=False)
    op.execute(
        "UPDATE answer SET gradings = (SELECT count(*) FROM annotation"
        " WHERE annotation.answer_id = answer.id AND annotation.status = 'submitted')"
    )


def downgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_index("ix_answer_gradings")
        batch_op.drop_column("gradings")

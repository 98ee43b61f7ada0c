"""Gold export at scale: an index that gives a unit's counted labels (rater, value, grading) without reading the
label rows (replacing ix_label_unit, its prefix), and a partial index of the labels that carry a comment

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COMMENTED = sa.text("comment != ''")


def upgrade() -> None:
    op.create_index(
        "ix_label_unit_rater",
        "criterionlabel",
        ["answer_id", "criterion_id", "rater_id", "value", "annotation_id"],
        unique=False,
    )
    op.drop_index("ix_label_unit", table_name="criterionlabel")  # a prefix of ix_label_unit_rater
    op.create_index(
        "ix_label_commented",
        "criterionlabel",
        ["answer_id", "criterion_id"],
        unique=False,
        sqlite_where=COMMENTED,
        postgresql_where=COMMENTED,
    )


def downgrade() -> None:
    op.create_index("ix_label_unit", "criterionlabel", ["answer_id", "criterion_id"], unique=False)
    op.drop_index("ix_label_commented", table_name="criterionlabel")
    op.drop_index("ix_label_unit_rater", table_name="criterionlabel")

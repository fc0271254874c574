"""hardening: dead letters keep their size, alarm devices' tests are recorded, ack links work once

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only a bounded prefix of a dead letter's payload is kept; its real size is kept beside it.
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_size', sa.Integer(), nullable=True))
        # Each lane keeps at most storage.dead_letters_max rows; its oldest are found through this.
        batch_op.create_index('ix_dead_letters_lane_id', ['lane', 'id'], unique=False)

    op.create_table('device_tests',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('last_test_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('test_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('device_id')
    )

    # An acknowledge link works once: a second use is refused (a forwarded or replayed link).
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ack_used_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('ack_used_at')
    op.drop_table('device_tests')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_lane_id')
        batch_op.drop_column('payload_size')

"""reassurance: the daily reassurance calls, one row per resident, day and attempt

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit row ids on PostgreSQL (BIGINT); SQLite's INTEGER PRIMARY KEY is 64-bit already and stays INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('reassurance_attempts',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('resident_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_sid', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.Column('digits', sa.String(length=8), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('incident_id', ROW_ID, nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reassurance_attempts', schema=None) as batch_op:
        batch_op.create_index('uq_reassurance_attempts_day', ['resident_id', 'day', 'attempt'], unique=True)
        batch_op.create_index('ix_reassurance_attempts_site_day', ['site', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_reassurance_attempts_provider_sid'), ['provider_sid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reassurance_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reassurance_attempts_provider_sid'))
        batch_op.drop_index('ix_reassurance_attempts_site_day')
        batch_op.drop_index('uq_reassurance_attempts_day')
    op.drop_table('reassurance_attempts')

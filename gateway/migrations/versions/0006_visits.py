"""visits: planned home visits and what became of each (checked in / out, checklist, missed)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit row ids on PostgreSQL (BIGINT); SQLite's INTEGER PRIMARY KEY is 64-bit already and stays INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('visits',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('resident', sa.String(length=64), nullable=False),
    sa.Column('plan', sa.String(length=64), nullable=False),
    sa.Column('carer', sa.String(length=64), nullable=False),
    sa.Column('planned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_in_via', sa.String(length=80), nullable=True),
    sa.Column('checked_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_out_via', sa.String(length=80), nullable=True),
    sa.Column('checklist', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('incident_id', ROW_ID, nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_visits_carer'), 'visits', ['carer'], unique=False)
    op.create_index('ix_visits_occurrence', 'visits', ['resident', 'plan', 'planned_at'], unique=True)
    op.create_index('ix_visits_site_planned', 'visits', ['site', 'planned_at'], unique=False)
    op.create_index('ix_visits_status_due', 'visits', ['status', 'due_by'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_visits_status_due', table_name='visits')
    op.drop_index('ix_visits_site_planned', table_name='visits')
    op.drop_index('ix_visits_occurrence', table_name='visits')
    op.drop_index(op.f('ix_visits_carer'), table_name='visits')
    op.drop_table('visits')

"""console: incidents taken by an operator, notes, dispatches, response scripts, shift handovers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit row ids on PostgreSQL (BIGINT); SQLite's INTEGER PRIMARY KEY is 64-bit already and stays INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, not batch mode: rebuilding `incidents` would put its partial unique
    # index (one active incident per key) at risk on SQLite.
    op.add_column('incidents', sa.Column('taken_by', sa.String(length=64), nullable=True))
    op.add_column('incidents', sa.Column('taken_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('incidents', sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_incidents_opened_at', 'incidents', ['opened_at'], unique=False)
    op.create_index('ix_incidents_site_opened', 'incidents', ['site', 'opened_at'], unique=False)

    op.create_table('incident_notes',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('incident_id', ROW_ID, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_notes_incident_id'), ['incident_id'], unique=False)

    op.create_table('dispatches',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('incident_id', ROW_ID, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('responder_id', sa.String(length=64), nullable=True),
    sa.Column('responder_name', sa.String(length=200), nullable=True),
    sa.Column('who', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatches_incident_id'), ['incident_id'], unique=False)

    op.create_table('response_scripts',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=True),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('response_scripts', schema=None) as batch_op:
        batch_op.create_index('ix_response_scripts_rule_site', ['rule', 'site'], unique=False)

    op.create_table('shift_handovers',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('signed_by', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shift_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shift_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('sites', sa.JSON(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('audit_id', ROW_ID, nullable=True),
    sa.Column('signature', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shift_handovers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_handovers_signed_by'), ['signed_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_shift_handovers_signed_at'), ['signed_at'], unique=False)


def downgrade() -> None:
    op.drop_table('shift_handovers')
    op.drop_table('response_scripts')
    op.drop_table('dispatches')
    op.drop_table('incident_notes')
    op.drop_index('ix_incidents_site_opened', 'incidents')
    op.drop_index('ix_incidents_opened_at', 'incidents')
    # Native DROP COLUMN (SQLite 3.35+), not a batch table rebuild: the rebuild drops `incidents`, which
    # alarm events and escalations reference, and foreign keys are enforced.
    op.drop_column('incidents', 'dispatched_at')
    op.drop_column('incidents', 'taken_at')
    op.drop_column('incidents', 'taken_by')

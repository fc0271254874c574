"""cluster: the gateway instances sharing a store, which instance sends each notification, doors' states

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_instances',
    sa.Column('instance', sa.String(length=64), nullable=False),
    sa.Column('alarm_client_id', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('adopted_by', sa.String(length=64), nullable=True),
    sa.Column('adopted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consoles', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('instance')
    )
    op.create_table('door_states',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('device_id')
    )
    # Each instance keeps its own rules' snapshot ("alarm@gw-a"): room for the instance's name. A batch
    # rebuild on SQLite, harmless for a table of a few rows.
    with op.batch_alter_table('rule_state') as batch_op:
        batch_op.alter_column('lane', existing_type=sa.String(length=32), type_=sa.String(length=128))
    # Native ADD COLUMN on both databases (nullable, no default): no batch rebuild of a busy table.
    op.add_column('notifications', sa.Column('owner', sa.String(length=64), nullable=True))
    op.add_column('notifications', sa.Column('attempt_started_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('notifications', 'attempt_started_at')
    op.drop_column('notifications', 'owner')
    with op.batch_alter_table('rule_state') as batch_op:
        batch_op.alter_column('lane', existing_type=sa.String(length=128), type_=sa.String(length=32))
    op.drop_table('door_states')
    op.drop_table('gateway_instances')

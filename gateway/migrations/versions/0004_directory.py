"""directory: sites, residents, devices, responders and policies as rows; users see chosen sites

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit row ids on PostgreSQL (BIGINT); SQLite's INTEGER PRIMARY KEY is 64-bit already and stays INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _common(*columns: sa.Column[Any]) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        *columns,
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    ]


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sites', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))

    op.create_table('directory_sites', *_common(
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    ))
    with op.batch_alter_table('directory_sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_sites_name'), ['name'], unique=False)

    op.create_table('directory_residents', *_common(
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('room', sa.String(length=64), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('key_safe', sa.Text(), nullable=True),
    ))
    with op.batch_alter_table('directory_residents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_residents_name'), ['name'], unique=False)
        batch_op.create_index('ix_directory_residents_site_status_name', ['site', 'status', 'name'], unique=False)

    op.create_table('directory_devices', *_common(
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('room', sa.String(length=64), nullable=True),
        sa.Column('resident', sa.String(length=64), nullable=True),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
    ))
    with op.batch_alter_table('directory_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_devices_resident'), ['resident'], unique=False)
        batch_op.create_index('ix_directory_devices_site_state', ['site', 'state'], unique=False)

    op.create_table('directory_responders', *_common(
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    ))
    with op.batch_alter_table('directory_responders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_responders_name'), ['name'], unique=False)

    op.create_table('directory_policies', *_common(
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    ))

    op.create_table('directory_history',
    sa.Column('audit_id', ROW_ID, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['audit_id'], ['audit_log.id'], ),
    sa.PrimaryKeyConstraint('audit_id')
    )
    with op.batch_alter_table('directory_history', schema=None) as batch_op:
        batch_op.create_index('ix_directory_history_entity', ['kind', 'entity_id'], unique=False)


def downgrade() -> None:
    op.drop_table('directory_history')
    op.drop_table('directory_policies')
    op.drop_table('directory_responders')
    op.drop_table('directory_devices')
    op.drop_table('directory_residents')
    op.drop_table('directory_sites')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('sites')

"""risks: body temperatures kept for the epidemic early warning (fever clusters)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit row ids on PostgreSQL (BIGINT); SQLite's INTEGER PRIMARY KEY is 64-bit already and stays INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('body_temperatures',
    sa.Column('id', ROW_ID, nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('resident', sa.String(length=64), nullable=False),
    sa.Column('celsius', sa.Float(), nullable=False),
    sa.Column('fever', sa.Boolean(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_body_temperatures_site_taken', 'body_temperatures', ['site', 'taken_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_body_temperatures_site_taken', table_name='body_temperatures')
    op.drop_table('body_temperatures')

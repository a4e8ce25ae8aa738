"""reversal requests: who asked for a reversal and why, kept before Stripe is asked

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:22:19.421074
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New table only: reversals recorded before it keep the history rows they have.
    op.create_table('reversal_requests',
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('obligation_id', sa.String(length=36), nullable=False),
    sa.Column('transfer_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reversal_id', sa.String(length=64), nullable=True),
    sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refusal', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligations.id'], ),
    sa.PrimaryKeyConstraint('idempotency_key'),
    sa.UniqueConstraint('reversal_id')
    )
    op.create_index(op.f('ix_reversal_requests_obligation_id'), 'reversal_requests', ['obligation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reversal_requests_obligation_id'), table_name='reversal_requests')
    op.drop_table('reversal_requests')

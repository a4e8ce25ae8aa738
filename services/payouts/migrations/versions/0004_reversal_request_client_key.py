"""reversal requests: the caller's idempotency key, unique per obligation, and whether it
asked for all that was left

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Requests kept before this revision were sent without a caller's key: NULL, and not
    # "whole" (nothing compares it for them).
    with op.batch_alter_table('reversal_requests') as batch:
        batch.add_column(sa.Column('client_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('whole', sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
        batch.create_unique_constraint('uq_reversal_requests_client_key',
                                       ['obligation_id', 'client_key'])


def downgrade() -> None:
    with op.batch_alter_table('reversal_requests') as batch:
        batch.drop_constraint('uq_reversal_requests_client_key', type_='unique')
        batch.drop_column('whole')
        batch.drop_column('client_key')

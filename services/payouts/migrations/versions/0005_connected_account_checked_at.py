"""connected accounts: when payouts last asked Stripe for the account itself, so that a lost
account.updated does not keep a cooperative's premiums waiting for ever

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: never asked, so an account already waiting is asked at the next sweep.
    with op.batch_alter_table('connected_accounts') as batch:
        batch.add_column(sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('connected_accounts') as batch:
        batch.drop_column('checked_at')

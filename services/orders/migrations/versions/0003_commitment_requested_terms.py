"""commitments: a digest of the terms each was asked for, so a request sent again under its
idempotency key is told apart from another request reusing the key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Commitments made before this revision have random ids that no key derives: NULL.
    with op.batch_alter_table('commitments') as batch:
        batch.add_column(sa.Column('requested_terms', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('commitments') as batch:
        batch.drop_column('requested_terms')

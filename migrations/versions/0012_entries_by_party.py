"""Entries indexed by the parties they name, for reading within a party scope (issue #19).

A container is in a party's scope when one of its entries was posted by that party or names it
as ``from_party``, ``to_party`` or ``destination_party``; one GIN index over that array answers
"which containers touched any of these parties".

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX entries_parties_ix ON ledger.entries USING gin ((ARRAY[
          origin_party, body ->> 'from_party', body ->> 'to_party', body ->> 'destination_party'
        ]));
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX ledger.entries_parties_ix")

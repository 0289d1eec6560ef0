"""Report facts in the containers read model: the mass balance and shipment log read them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.adapters.read_model import report_facts_columns
from services.ledger.domain.custody import reconstruct
from services.ledger.domain.report_facts import container_facts

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ENTRY_COLUMNS = (
    "seq, container_id, body, received_at, recorded_at, origin_kind, origin_party, "
    "origin_device, kafka_partition, kafka_offset, prev_hash, entry_hash"
)


def upgrade() -> None:
    # Derived like the rest of the row, so the application's existing SELECT, INSERT, UPDATE and
    # DELETE rights on ledger.containers cover these columns: no new grants.
    op.execute(
        """
        ALTER TABLE ledger.containers
          ADD COLUMN report_facts jsonb,
          ADD COLUMN shipment_id  text,
          ADD COLUMN pickup_at    timestamptz,
          ADD COLUMN intake_at    timestamptz,
          ADD COLUMN receipt_at   timestamptz;
        """
    )
    backfill_facts()
    op.execute(
        """
        CREATE INDEX containers_pickup_at_ix ON ledger.containers (pickup_at)
          WHERE pickup_at IS NOT NULL;
        CREATE INDEX containers_intake_at_ix ON ledger.containers (intake_at)
          WHERE intake_at IS NOT NULL;
        CREATE INDEX containers_receipt_at_ix ON ledger.containers (receipt_at)
          WHERE receipt_at IS NOT NULL;
        CREATE INDEX containers_shipment_ix ON ledger.containers (shipment_id)
          WHERE shipment_id IS NOT NULL;
        """
    )


def backfill_facts(chunk: int = 1000) -> None:
    """Compute the facts of containers recorded before this migration from their entries."""
    connection = op.get_bind()
    after = ""
    while True:
        ids = list(
            connection.execute(
                sa.text(
                    "SELECT container_id FROM ledger.containers WHERE container_id > :after "
                    "ORDER BY container_id LIMIT :chunk"
                ),
                {"after": after, "chunk": chunk},
            ).scalars()
        )
        if not ids:
            return
        entries: dict[str, list[sa.RowMapping]] = {container_id: [] for container_id in ids}
        for row in connection.execute(
            sa.text(
                f"SELECT {ENTRY_COLUMNS} FROM ledger.entries "
                "WHERE container_id = ANY(:ids) ORDER BY seq"
            ),
            {"ids": ids},
        ).mappings():
            entries[row["container_id"]].append(row)
        rows = []
        for container_id, container_rows in entries.items():
            trail = reconstruct(
                [recorded_entry(row) for row in container_rows], now=datetime.now(UTC)
            )
            columns = report_facts_columns(container_facts(trail))
            rows.append(
                {**columns, "report_facts": json.dumps(columns["report_facts"]), "id": container_id}
            )
        connection.execute(
            sa.text(
                "UPDATE ledger.containers SET report_facts = CAST(:report_facts AS jsonb), "
                "shipment_id = :shipment_id, pickup_at = :pickup_at, intake_at = :intake_at, "
                "receipt_at = :receipt_at WHERE container_id = :id"
            ),
            rows,
        )
        after = ids[-1]


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE ledger.containers
          DROP COLUMN receipt_at,
          DROP COLUMN intake_at,
          DROP COLUMN pickup_at,
          DROP COLUMN shipment_id,
          DROP COLUMN report_facts;
        """
    )

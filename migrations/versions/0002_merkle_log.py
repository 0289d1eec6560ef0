"""Merkle log: stored perfect subtree hashes and signed checkpoints, both append-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from services.ledger.domain.integrity.merkle import Frontier

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE ledger.merkle_nodes (
          level smallint NOT NULL,
          idx   bigint NOT NULL,
          hash  bytea NOT NULL,
          CONSTRAINT merkle_nodes_pk PRIMARY KEY (level, idx),
          CONSTRAINT merkle_nodes_level_ck CHECK (level BETWEEN 0 AND 63),
          CONSTRAINT merkle_nodes_hash_len_ck CHECK (octet_length(hash) = 32)
        );

        CREATE TABLE ledger.checkpoints (
          tree_size  bigint PRIMARY KEY,
          root_hash  bytea NOT NULL,
          origin     text NOT NULL,
          key_name   text NOT NULL,
          note       text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT checkpoints_size_ck CHECK (tree_size > 0),
          CONSTRAINT checkpoints_root_len_ck CHECK (octet_length(root_hash) = 32)
        );

        CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON ledger.merkle_nodes
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON ledger.merkle_nodes
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger.checkpoints
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON ledger.checkpoints
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();

        GRANT SELECT, INSERT ON ledger.merkle_nodes, ledger.checkpoints TO {APP_ROLE};
        """
    )
    backfill_nodes()


def backfill_nodes(chunk: int = 10_000) -> None:
    """Build the stored nodes for entries recorded before this migration."""
    connection = op.get_bind()
    frontier = Frontier()
    while True:
        hashes = connection.execute(
            sa.text(
                "SELECT seq, entry_hash FROM ledger.entries WHERE seq >= :size "
                "ORDER BY seq LIMIT :chunk"
            ),
            {"size": frontier.size, "chunk": chunk},
        ).all()
        if not hashes:
            return
        rows = []
        for seq, digest in hashes:
            if seq != frontier.size:
                raise RuntimeError(f"ledger.entries has a gap at seq {frontier.size}")
            rows.extend(
                {"level": level, "idx": index, "hash": node}
                for level, index, node in frontier.append(bytes(digest))
            )
        connection.execute(
            sa.text("INSERT INTO ledger.merkle_nodes (level, idx, hash) VALUES (:level, :idx, :hash)"),
            rows,
        )


def downgrade() -> None:
    op.execute("DROP TABLE ledger.checkpoints; DROP TABLE ledger.merkle_nodes;")

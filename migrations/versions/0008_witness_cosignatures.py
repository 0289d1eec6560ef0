"""Witness cosignatures of signed checkpoints (C2SP tlog-cosignature), append-only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE ledger.cosignatures (
          tree_size   bigint NOT NULL REFERENCES ledger.checkpoints (tree_size),
          witness     text NOT NULL,
          line        text NOT NULL,
          signed_at   timestamptz NOT NULL,
          received_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT cosignatures_pk PRIMARY KEY (tree_size, witness),
          CONSTRAINT cosignatures_line_ck CHECK (line LIKE '— %')
        );
        CREATE INDEX cosignatures_witness_ix ON ledger.cosignatures (witness, tree_size DESC);

        CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE ON ledger.cosignatures
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER cosignatures_no_truncate BEFORE TRUNCATE ON ledger.cosignatures
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();

        GRANT SELECT, INSERT ON ledger.cosignatures TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ledger.cosignatures;")

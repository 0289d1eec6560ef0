"""EPCIS named queries and their subscriptions; entries indexed by event time.

A subscription's ``after_seq`` is its cursor over the append-only ledger: every entry after it
that the query selects is still to be delivered, so the ledger itself is the durable outbox
(docs/epcis.md). The notifier advances it only after the subscriber answered 2xx.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE SCHEMA IF NOT EXISTS epcis;
        GRANT USAGE ON SCHEMA epcis TO {APP_ROLE};
        CREATE TABLE epcis.queries (
          name        text PRIMARY KEY,
          query       jsonb NOT NULL,
          created_by  text NOT NULL,
          created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE epcis.subscriptions (
          subscription_id  uuid PRIMARY KEY,
          query_name       text NOT NULL REFERENCES epcis.queries (name) ON DELETE CASCADE,
          dest             text NOT NULL,
          signature_token  text,
          stream           boolean NOT NULL,
          schedule         jsonb,
          report_if_empty  boolean NOT NULL DEFAULT false,
          initial_record_time timestamptz,
          created_by       text NOT NULL,
          created_at       timestamptz NOT NULL DEFAULT now(),
          after_seq        bigint NOT NULL,
          batch_size       integer NOT NULL CHECK (batch_size >= 1),
          attempts         integer NOT NULL DEFAULT 0,
          next_attempt_at  timestamptz NOT NULL DEFAULT now(),
          last_notified_at timestamptz,
          last_error       text,
          CONSTRAINT subscriptions_trigger_ck CHECK (stream OR schedule IS NOT NULL)
        );
        CREATE INDEX subscriptions_due_ix ON epcis.subscriptions (next_attempt_at);
        CREATE INDEX subscriptions_query_ix ON epcis.subscriptions (query_name);
        GRANT SELECT, INSERT, DELETE ON epcis.queries TO {APP_ROLE};
        GRANT SELECT, INSERT, DELETE ON epcis.subscriptions TO {APP_ROLE};
        GRANT UPDATE (after_seq, batch_size, attempts, next_attempt_at, last_notified_at,
                      last_error) ON epcis.subscriptions TO {APP_ROLE};

        CREATE INDEX entries_occurred_at_ix ON ledger.entries (occurred_at);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX ledger.entries_occurred_at_ix; DROP TABLE epcis.subscriptions; "
        "DROP TABLE epcis.queries; DROP SCHEMA epcis;"
    )

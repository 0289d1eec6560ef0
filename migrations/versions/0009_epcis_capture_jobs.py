"""EPCIS capture jobs: one row per POST /epcis/capture, written once the job is done.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE SCHEMA IF NOT EXISTS ingest;
        GRANT USAGE ON SCHEMA ingest TO {APP_ROLE};
        CREATE TABLE ingest.capture_jobs (
          capture_id     uuid PRIMARY KEY,
          party_id       text NOT NULL,
          device_id      text NOT NULL,
          behaviour      text NOT NULL CHECK (behaviour IN ('rollback', 'proceed')),
          events         integer NOT NULL,
          accepted       integer NOT NULL,
          success        boolean NOT NULL,
          errors         jsonb NOT NULL,
          created_at     timestamptz NOT NULL,
          finished_at    timestamptz NOT NULL
        );
        CREATE INDEX capture_jobs_party_ix ON ingest.capture_jobs (party_id, created_at DESC);
        GRANT SELECT, INSERT ON ingest.capture_jobs TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ingest.capture_jobs; DROP SCHEMA ingest;")

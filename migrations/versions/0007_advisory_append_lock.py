"""Appends serialise on a transaction-scoped advisory lock instead of an EXCLUSIVE table lock.

The table lock conflicted with the SHARE UPDATE EXCLUSIVE lock of VACUUM and ANALYZE. Under
steady appends autovacuum skipped ledger.entries, and when it did catch the table between two
batches the next append waited deadlock_timeout (1 s) for PostgreSQL to cancel it: end-to-end
latency showed a 1-s batch about once a minute, and the table was never vacuumed. The advisory
lock gives appenders the same order (one at a time, held until commit, so insert order =
commit order = Merkle leaf index) without touching maintenance. A statement trigger refuses an
INSERT whose transaction does not hold it, so no writer can skip the protocol, as none could
get past the table lock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION ledger.lock_entries_for_append() RETURNS void
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        BEGIN
          PERFORM pg_advisory_xact_lock('ledger.entries'::regclass::oid::bigint);
        END $$;

        CREATE FUNCTION ledger.require_append_lock() RETURNS trigger
          LANGUAGE plpgsql SET search_path = pg_catalog AS $$
        BEGIN
          -- pg_advisory_xact_lock(bigint) on the table's oid (below 2^32) shows in pg_locks
          -- as classid 0, objid = the oid, objsubid 1.
          IF NOT EXISTS (SELECT 1 FROM pg_locks
                          WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                            AND classid = 0 AND objid = 'ledger.entries'::regclass::oid
                            AND objsubid = 1) THEN
            RAISE EXCEPTION USING
              ERRCODE = 'object_not_in_prerequisite_state',
              MESSAGE = 'appending to ledger.entries needs the append lock',
              HINT = 'call ledger.lock_entries_for_append() first, in the same transaction';
          END IF;
          RETURN NULL;
        END $$;

        CREATE TRIGGER entries_require_append_lock BEFORE INSERT ON ledger.entries
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.require_append_lock();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER entries_require_append_lock ON ledger.entries;
        DROP FUNCTION ledger.require_append_lock();
        CREATE OR REPLACE FUNCTION ledger.lock_entries_for_append() RETURNS void
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        BEGIN
          LOCK TABLE ledger.entries IN EXCLUSIVE MODE;
        END $$;
        """
    )

"""Let the consumer analyse ledger.entries as fast as a young ledger grows.

Autovacuum visits a table at most once a minute (and skipped this one while every append held
an EXCLUSIVE table lock; 0007 replaces that lock). A ledger growing from nothing at 2,000
events/s outgrew its plans within the minute: a prepared lookup planned as a scan of a small
table kept scanning a table of 100,000 entries, batches took 0.4-1.5 s and the end-to-end p99
reached 9 s. The consumer calls this function between two batches once its own appends would
pass autovacuum's threshold; the function applies that threshold and ANALYZEs when it is passed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"
UNSAMPLED = ("seq", "event_id", "body", "prev_hash", "entry_hash")
COARSE = (
    "container_id",
    "event_type",
    "occurred_at",
    "received_at",
    "recorded_at",
    "origin_kind",
    "origin_party",
    "origin_device",
    "kafka_partition",
    "kafka_offset",
)


def upgrade() -> None:
    # ANALYZE needs the table's owner, so the owner lends it through a narrow SECURITY DEFINER
    # function, as it lends the append lock. The consumer runs it between two batches, so it
    # samples 3,000 rows rather than 30,000 (16-18 ms against 206-251 ms at 400,000 entries,
    # the body skipped in both): every read of the ledger goes through an index, and the
    # planner needs the table's size and rough distributions, not fine histograms. Columns
    # that are unique by index, or never filtered on, get no statistics at all.
    op.execute(
        f"""
        ALTER TABLE ledger.entries
          {", ".join(f"ALTER COLUMN {column} SET STATISTICS 0" for column in UNSAMPLED)},
          {", ".join(f"ALTER COLUMN {column} SET STATISTICS 10" for column in COARSE)};

        -- Also returns how many more inserted rows will make the next ANALYZE due, so the
        -- consumer can come back when its own appends alone would pass the threshold.
        CREATE FUNCTION ledger.analyze_entries_if_stale(
            OUT analysed boolean, OUT changes_until_due bigint)
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        DECLARE
          changed bigint;
          estimated_rows double precision;
          threshold bigint := current_setting('autovacuum_analyze_threshold')::bigint;
          scale_factor double precision :=
            current_setting('autovacuum_analyze_scale_factor')::double precision;
        BEGIN
          SELECT coalesce(s.n_mod_since_analyze, 0), greatest(c.reltuples, 0)
            INTO changed, estimated_rows
            FROM pg_class AS c LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
           WHERE c.oid = 'ledger.entries'::regclass;
          analysed := changed > threshold + scale_factor * estimated_rows;
          IF analysed THEN
            ANALYZE ledger.entries;
            SELECT greatest(reltuples, 0) INTO estimated_rows
              FROM pg_class WHERE oid = 'ledger.entries'::regclass;
            changed := 0;
          END IF;
          changes_until_due := floor(threshold + scale_factor * estimated_rows) - changed + 1;
        END $$;
        REVOKE ALL ON FUNCTION ledger.analyze_entries_if_stale() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION ledger.analyze_entries_if_stale() TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP FUNCTION ledger.analyze_entries_if_stale();
        ALTER TABLE ledger.entries
          {", ".join(f"ALTER COLUMN {column} SET STATISTICS -1" for column in UNSAMPLED + COARSE)};
        """
    )

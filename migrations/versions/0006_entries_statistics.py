"""Let the consumer keep ledger.entries analysed, which autovacuum cannot while appends run.

Every append holds LOCK TABLE ledger.entries IN EXCLUSIVE MODE until it commits, and autovacuum
skips a table it cannot lock at once, so under steady appends the table was never analysed and
the planner scanned it whole for reads of many containers. The consumer calls this function
between two batches; it applies autovacuum's own threshold and ANALYZEs when it is passed.

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


def upgrade() -> None:
    # ANALYZE needs the table's owner, so the owner lends it through a narrow SECURITY DEFINER
    # function, as it lends the append lock. No query filters on the body itself, so its
    # statistics are not gathered: they were most of ANALYZE's work.
    op.execute(
        f"""
        ALTER TABLE ledger.entries ALTER COLUMN body SET STATISTICS 0;

        CREATE FUNCTION ledger.analyze_entries_if_stale() RETURNS boolean
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        DECLARE
          changed bigint;
          estimated_rows double precision;
        BEGIN
          SELECT s.n_mod_since_analyze, greatest(c.reltuples, 0)
            INTO changed, estimated_rows
            FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
           WHERE s.relid = 'ledger.entries'::regclass;
          IF changed IS NULL OR changed <= current_setting('autovacuum_analyze_threshold')::bigint
               + current_setting('autovacuum_analyze_scale_factor')::float8 * estimated_rows THEN
            RETURN false;
          END IF;
          ANALYZE ledger.entries;
          RETURN true;
        END $$;
        REVOKE ALL ON FUNCTION ledger.analyze_entries_if_stale() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION ledger.analyze_entries_if_stale() TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION ledger.analyze_entries_if_stale();
        ALTER TABLE ledger.entries ALTER COLUMN body SET STATISTICS -1;
        """
    )

"""Outbound plant notifications: endpoints, a transactional outbox, an append-only delivery log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        -- Where a plant wants `shipment.inbound` notifications, and the key we sign them with.
        -- The signing secret is our own outbound key, separate from the plant's inbound
        -- registry.plant_secrets: each direction rotates on its own, and a plant's receipt key
        -- can never be used to forge our notifications (or the reverse). Like the inbound
        -- secrets it is an HMAC key, so it is stored as issued (whsec_ form).
        CREATE TABLE registry.plant_endpoints (
          party_id        text NOT NULL
                          CONSTRAINT plant_endpoints_party_fk
                          REFERENCES registry.parties (party_id),
          url             text NOT NULL,
          secret          text NOT NULL,
          enabled         boolean NOT NULL DEFAULT true,
          disabled_reason text,
          created_at      timestamptz NOT NULL DEFAULT now(),
          updated_at      timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT plant_endpoints_pk PRIMARY KEY (party_id),
          CONSTRAINT plant_endpoints_url_ck CHECK (url ~ '^https?://[^\\s/]+'),
          CONSTRAINT plant_endpoints_secret_ck
            CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{{32,88}}={{0,2}}$'),
          CONSTRAINT plant_endpoints_disabled_ck CHECK (enabled OR disabled_reason IS NOT NULL)
        );

        -- The transactional outbox: written in the same transaction as the ledger entry that
        -- causes it, so a recorded pickup always has its notification and a rolled-back one
        -- never does. Unlike ledger.entries this is OPERATIONAL STATE, not ledger history: the
        -- notifier updates status / attempts / next_attempt_at / delivered_at, so it has no
        -- append-only triggers and the application may UPDATE those columns (never DELETE).
        -- The history of what was sent is ledger.webhook_deliveries, which is append-only.
        CREATE TABLE ledger.outbox (
          id              bigserial,
          entry_seq       bigint NOT NULL
                          CONSTRAINT outbox_entry_fk REFERENCES ledger.entries (seq),
          event_id        uuid NOT NULL,
          party_id        text NOT NULL
                          CONSTRAINT outbox_party_fk REFERENCES registry.parties (party_id),
          kind            text NOT NULL,
          payload         jsonb NOT NULL,
          created_at      timestamptz NOT NULL DEFAULT now(),
          status          text NOT NULL DEFAULT 'pending',
          attempts        integer NOT NULL DEFAULT 0,
          next_attempt_at timestamptz DEFAULT now(),
          delivered_at    timestamptz,
          CONSTRAINT outbox_pk PRIMARY KEY (id),
          CONSTRAINT outbox_event_id_uq UNIQUE (event_id),
          CONSTRAINT outbox_kind_ck CHECK (kind IN ('shipment.inbound')),
          CONSTRAINT outbox_status_ck
            CHECK (status IN ('pending', 'delivered', 'failed', 'disabled')),
          CONSTRAINT outbox_attempts_ck CHECK (attempts >= 0),
          CONSTRAINT outbox_due_ck CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL),
          CONSTRAINT outbox_delivered_ck
            CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
        );
        CREATE INDEX outbox_due_ix ON ledger.outbox (next_attempt_at, id)
          WHERE status = 'pending';
        CREATE INDEX outbox_party_ix ON ledger.outbox (party_id, id);

        -- Every delivery attempt, as it happened: append-only like the rest of the ledger.
        CREATE TABLE ledger.webhook_deliveries (
          id              bigserial,
          outbox_id       bigint NOT NULL
                          CONSTRAINT webhook_deliveries_outbox_fk REFERENCES ledger.outbox (id),
          attempt         integer NOT NULL,
          attempted_at    timestamptz NOT NULL,
          url             text NOT NULL,
          status_code     integer,
          error           text,
          duration_ms     integer NOT NULL,
          next_attempt_at timestamptz,
          CONSTRAINT webhook_deliveries_pk PRIMARY KEY (id),
          CONSTRAINT webhook_deliveries_attempt_uq UNIQUE (outbox_id, attempt),
          CONSTRAINT webhook_deliveries_attempt_ck CHECK (attempt >= 1),
          CONSTRAINT webhook_deliveries_status_ck
            CHECK (status_code IS NULL OR status_code BETWEEN 100 AND 599),
          CONSTRAINT webhook_deliveries_outcome_ck
            CHECK (status_code IS NOT NULL OR error IS NOT NULL),
          CONSTRAINT webhook_deliveries_duration_ck CHECK (duration_ms >= 0)
        );

        CREATE TRIGGER webhook_deliveries_append_only
          BEFORE UPDATE OR DELETE ON ledger.webhook_deliveries
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER webhook_deliveries_no_truncate BEFORE TRUNCATE ON ledger.webhook_deliveries
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();

        GRANT SELECT, INSERT ON registry.plant_endpoints TO {APP_ROLE};
        GRANT UPDATE (url, secret, enabled, disabled_reason, updated_at)
          ON registry.plant_endpoints TO {APP_ROLE};
        GRANT SELECT, INSERT ON ledger.outbox, ledger.webhook_deliveries TO {APP_ROLE};
        GRANT UPDATE (status, attempts, next_attempt_at, delivered_at) ON ledger.outbox
          TO {APP_ROLE};
        GRANT USAGE ON SEQUENCE ledger.outbox_id_seq, ledger.webhook_deliveries_id_seq
          TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE ledger.webhook_deliveries;
        DROP TABLE ledger.outbox;
        DROP TABLE registry.plant_endpoints;
        """
    )

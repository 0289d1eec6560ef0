"""Registry, append-only ledger, rejected messages, consumer offsets, containers read model.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN;
          END IF;
        END $$;

        CREATE SCHEMA registry;
        CREATE SCHEMA ledger;

        CREATE TABLE registry.parties (
          party_id   text PRIMARY KEY,
          name       text NOT NULL,
          role       text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT parties_role_ck CHECK (role IN ('site', 'hauler', 'hub', 'plant')),
          CONSTRAINT parties_id_ck CHECK (party_id ~ '^[a-z0-9][a-z0-9._-]{{1,63}}$')
        );

        CREATE TABLE registry.devices (
          device_id  text PRIMARY KEY,
          party_id   text NOT NULL
                     CONSTRAINT devices_party_fk REFERENCES registry.parties (party_id),
          label      text NOT NULL DEFAULT '',
          token_hash bytea NOT NULL CONSTRAINT devices_token_hash_uq UNIQUE,
          created_at timestamptz NOT NULL DEFAULT now(),
          revoked_at timestamptz
        );

        CREATE TABLE registry.api_tokens (
          token_id   text PRIMARY KEY,
          role       text NOT NULL,
          label      text NOT NULL DEFAULT '',
          token_hash bytea NOT NULL CONSTRAINT api_tokens_token_hash_uq UNIQUE,
          created_at timestamptz NOT NULL DEFAULT now(),
          revoked_at timestamptz,
          CONSTRAINT api_tokens_role_ck CHECK (role IN ('auditor', 'admin'))
        );

        CREATE TABLE ledger.entries (
          seq             bigint PRIMARY KEY,
          event_id        uuid NOT NULL CONSTRAINT entries_event_id_uq UNIQUE,
          container_id    text NOT NULL,
          event_type      text NOT NULL,
          body            jsonb NOT NULL,
          occurred_at     timestamptz NOT NULL,
          received_at     timestamptz NOT NULL,
          recorded_at     timestamptz NOT NULL,
          origin_kind     text NOT NULL,
          origin_party    text NOT NULL,
          origin_device   text,
          kafka_partition integer NOT NULL,
          kafka_offset    bigint NOT NULL,
          prev_hash       bytea NOT NULL,
          entry_hash      bytea NOT NULL CONSTRAINT entries_entry_hash_uq UNIQUE,
          CONSTRAINT entries_seq_ck CHECK (seq >= 0),
          CONSTRAINT entries_hash_len_ck
            CHECK (octet_length(prev_hash) = 32 AND octet_length(entry_hash) = 32),
          CONSTRAINT entries_kafka_position_uq UNIQUE (kafka_partition, kafka_offset)
        );
        CREATE INDEX entries_container_ix ON ledger.entries (container_id, seq);
        CREATE INDEX entries_recorded_at_ix ON ledger.entries (recorded_at);

        CREATE TABLE ledger.rejected (
          id              bigserial PRIMARY KEY,
          kafka_topic     text NOT NULL,
          kafka_partition integer NOT NULL,
          kafka_offset    bigint NOT NULL,
          reason_code     text NOT NULL,
          reason          text NOT NULL,
          raw             bytea NOT NULL,
          event_id        uuid,
          container_id    text,
          rejected_at     timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT rejected_kafka_position_uq UNIQUE (kafka_topic, kafka_partition, kafka_offset)
        );
        CREATE INDEX rejected_container_ix ON ledger.rejected (container_id);

        CREATE TABLE ledger.consumer_offsets (
          consumer_group text NOT NULL,
          topic          text NOT NULL,
          kafka_partition integer NOT NULL,
          next_offset    bigint NOT NULL,
          CONSTRAINT consumer_offsets_pk PRIMARY KEY (consumer_group, topic, kafka_partition)
        );

        CREATE TABLE ledger.containers (
          container_id      text PRIMARY KEY,
          state             text NOT NULL,
          custodian         text,
          location_id       text,
          first_dropoff_at  timestamptz,
          state_since       timestamptz,
          last_occurred_at  timestamptz NOT NULL,
          entry_count       integer NOT NULL,
          head_seq          bigint NOT NULL,
          anomalies         text[] NOT NULL DEFAULT '{{}}',
          updated_at        timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX containers_state_ix ON ledger.containers (state, container_id);
        CREATE INDEX containers_custodian_ix ON ledger.containers (custodian, container_id);
        CREATE INDEX containers_location_ix ON ledger.containers (location_id, container_id);
        CREATE INDEX containers_anomalies_ix ON ledger.containers USING gin (anomalies);

        CREATE FUNCTION ledger.reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'ledger table %.% is append-only: % is not allowed',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$;

        CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON ledger.entries
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON ledger.entries
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER rejected_append_only BEFORE UPDATE OR DELETE ON ledger.rejected
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER rejected_no_truncate BEFORE TRUNCATE ON ledger.rejected
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();

        -- LOCK TABLE in EXCLUSIVE MODE needs UPDATE/DELETE rights the application must not
        -- hold, so the owner lends the lock through a narrow SECURITY DEFINER function.
        CREATE FUNCTION ledger.lock_entries_for_append() RETURNS void
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        BEGIN
          LOCK TABLE ledger.entries IN EXCLUSIVE MODE;
        END $$;
        REVOKE ALL ON FUNCTION ledger.lock_entries_for_append() FROM PUBLIC;

        GRANT USAGE ON SCHEMA registry, ledger TO {APP_ROLE};
        GRANT SELECT, INSERT ON registry.parties, registry.devices, registry.api_tokens
          TO {APP_ROLE};
        GRANT UPDATE (revoked_at) ON registry.devices, registry.api_tokens TO {APP_ROLE};
        GRANT SELECT, INSERT ON ledger.entries, ledger.rejected TO {APP_ROLE};
        GRANT USAGE ON SEQUENCE ledger.rejected_id_seq TO {APP_ROLE};
        GRANT SELECT, INSERT, UPDATE ON ledger.consumer_offsets, ledger.containers
          TO {APP_ROLE};
        GRANT DELETE ON ledger.containers TO {APP_ROLE};
        GRANT EXECUTE ON FUNCTION ledger.lock_entries_for_append() TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP SCHEMA ledger CASCADE;
        DROP SCHEMA registry CASCADE;
        REVOKE ALL ON SCHEMA public FROM {APP_ROLE};
        """
    )

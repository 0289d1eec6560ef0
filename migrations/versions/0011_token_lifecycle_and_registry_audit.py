"""Party tokens, scoped auditors, token expiry and use, device-token rotation, jurisdictions,
and the registry's append-only audit trail.

- ``registry.parties.jurisdiction``: ISO 3166-2 (``US-CA``), optional.
- ``registry.api_tokens``: role ``party`` (bound to ``party_id``); an auditor may be scoped to
  parties and/or jurisdictions (empty arrays: unscoped); ``expires_at``; ``last_used_at``
  (refreshed at most once per token-cache window).
- ``registry.devices``: ``last_used_at``; on rotation the previous token keeps working until
  ``previous_expires_at``.
- ``registry.audit``: who changed what in the registry, before and after, when. INSERT and
  SELECT only, as the ledger's tables: triggers refuse UPDATE, DELETE and TRUNCATE.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE registry.parties
          ADD COLUMN jurisdiction text
            CONSTRAINT parties_jurisdiction_ck CHECK (jurisdiction ~ '^[A-Z]{{2}}-[A-Z0-9]{{1,3}}$');

        ALTER TABLE registry.api_tokens
          DROP CONSTRAINT api_tokens_role_ck,
          ADD CONSTRAINT api_tokens_role_ck CHECK (role IN ('auditor', 'admin', 'party')),
          ADD COLUMN party_id text CONSTRAINT api_tokens_party_fk REFERENCES registry.parties,
          ADD COLUMN scope_parties text[] NOT NULL DEFAULT '{{}}',
          ADD COLUMN scope_jurisdictions text[] NOT NULL DEFAULT '{{}}',
          ADD COLUMN expires_at timestamptz,
          ADD COLUMN last_used_at timestamptz,
          ADD CONSTRAINT api_tokens_party_ck CHECK ((role = 'party') = (party_id IS NOT NULL)),
          ADD CONSTRAINT api_tokens_scope_ck CHECK (
            role = 'auditor' OR (scope_parties = '{{}}' AND scope_jurisdictions = '{{}}'));

        ALTER TABLE registry.devices
          ADD COLUMN last_used_at timestamptz,
          ADD COLUMN previous_token_hash bytea CONSTRAINT devices_previous_token_uq UNIQUE,
          ADD COLUMN previous_expires_at timestamptz;

        CREATE TABLE registry.audit (
          id       bigserial PRIMARY KEY,
          at       timestamptz NOT NULL DEFAULT now(),
          actor    text NOT NULL,
          action   text NOT NULL,
          subject  text NOT NULL,
          before   jsonb,
          after    jsonb
        );
        CREATE INDEX audit_subject_ix ON registry.audit (subject, id);
        CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON registry.audit
          FOR EACH ROW EXECUTE FUNCTION ledger.reject_mutation();
        CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON registry.audit
          FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_mutation();

        GRANT SELECT, INSERT ON registry.audit TO {APP_ROLE};
        GRANT USAGE ON SEQUENCE registry.audit_id_seq TO {APP_ROLE};
        GRANT UPDATE (last_used_at) ON registry.api_tokens TO {APP_ROLE};
        GRANT UPDATE (last_used_at, token_hash, previous_token_hash, previous_expires_at)
          ON registry.devices TO {APP_ROLE};
        GRANT UPDATE (jurisdiction) ON registry.parties TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE registry.audit;
        ALTER TABLE registry.devices DROP COLUMN last_used_at, DROP COLUMN previous_token_hash,
          DROP COLUMN previous_expires_at;
        DELETE FROM registry.api_tokens WHERE role = 'party';
        ALTER TABLE registry.api_tokens DROP CONSTRAINT api_tokens_scope_ck,
          DROP CONSTRAINT api_tokens_party_ck, DROP COLUMN party_id, DROP COLUMN scope_parties,
          DROP COLUMN scope_jurisdictions, DROP COLUMN expires_at, DROP COLUMN last_used_at,
          DROP CONSTRAINT api_tokens_role_ck,
          ADD CONSTRAINT api_tokens_role_ck CHECK (role IN ('auditor', 'admin'));
        ALTER TABLE registry.parties DROP COLUMN jurisdiction;
        """
    )

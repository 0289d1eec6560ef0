"""Plant webhook secrets (Standard Webhooks), two valid at once during a rotation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APP_ROLE = "custody_app"


def upgrade() -> None:
    op.execute(
        f"""
        -- Unlike device and API tokens (stored only as SHA-256 hashes), a webhook secret is an
        -- HMAC key: ingest must hold the key itself to recompute a plant's signature, so it is
        -- stored as issued (the whsec_ form). Rotation never deletes: a replaced secret gets
        -- expires_at = rotation time + grace, and only rows with expires_at NULL or in the
        -- future verify. Only the owner may delete rows; the application may only set expiry.
        CREATE TABLE registry.plant_secrets (
          secret_id  bigserial PRIMARY KEY,
          party_id   text NOT NULL
                     CONSTRAINT plant_secrets_party_fk REFERENCES registry.parties (party_id),
          secret     text NOT NULL CONSTRAINT plant_secrets_secret_uq UNIQUE,
          created_at timestamptz NOT NULL DEFAULT now(),
          expires_at timestamptz,
          CONSTRAINT plant_secrets_format_ck
            CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{{32,88}}={{0,2}}$'),
          CONSTRAINT plant_secrets_expiry_ck CHECK (expires_at IS NULL OR expires_at >= created_at)
        );
        CREATE INDEX plant_secrets_party_ix ON registry.plant_secrets (party_id, created_at);

        GRANT SELECT, INSERT ON registry.plant_secrets TO {APP_ROLE};
        GRANT UPDATE (expires_at) ON registry.plant_secrets TO {APP_ROLE};
        GRANT USAGE ON SEQUENCE registry.plant_secrets_secret_id_seq TO {APP_ROLE};
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE registry.plant_secrets;")

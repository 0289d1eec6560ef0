"""SQLAlchemy Core views of the ledger's tables (Alembic migrations are the only schema source).

The registry's tables are ``services/registry/tables.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()


entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", Uuid, nullable=False),
    Column("container_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("origin_kind", Text, nullable=False),
    Column("origin_party", Text, nullable=False),
    Column("origin_device", Text),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("entry_hash", LargeBinary, nullable=False),
    schema="ledger",
)

rejected = Table(
    "rejected",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kafka_topic", Text, nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("reason_code", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("event_id", Uuid),
    Column("container_id", Text),
    Column("rejected_at", DateTime(timezone=True)),
    schema="ledger",
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("kafka_partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    schema="ledger",
)

containers = Table(
    "containers",
    metadata,
    Column("container_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("custodian", Text),
    Column("location_id", Text),
    Column("first_dropoff_at", DateTime(timezone=True)),
    Column("state_since", DateTime(timezone=True)),
    Column("last_occurred_at", DateTime(timezone=True), nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("head_seq", BigInteger, nullable=False),
    Column("anomalies", ARRAY(Text), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column("report_facts", JSONB),
    Column("shipment_id", Text),
    Column("pickup_at", DateTime(timezone=True)),
    Column("intake_at", DateTime(timezone=True)),
    Column("receipt_at", DateTime(timezone=True)),
    schema="ledger",
)

merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
    schema="ledger",
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary, nullable=False),
    Column("origin", Text, nullable=False),
    Column("key_name", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    schema="ledger",
)

cosignatures = Table(
    "cosignatures",
    metadata,
    Column("tree_size", BigInteger, primary_key=True),
    Column("witness", Text, primary_key=True),
    Column("line", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True)),
    schema="ledger",
)

# Plant notifications (services/ledger/adapters/outbox.py): the outbox and the delivery log.

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("entry_seq", BigInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("party_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    schema="ledger",
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("url", Text, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    schema="ledger",
)

# EPCIS named queries and subscriptions (services/ledger/adapters/epcis_queries.py).

epcis_queries = Table(
    "queries",
    metadata,
    Column("name", Text, primary_key=True),
    Column("query", JSONB, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    schema="epcis",
)

epcis_subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", Uuid, primary_key=True),
    Column("query_name", Text, nullable=False),
    Column("dest", Text, nullable=False),
    Column("signature_token", Text),
    Column("stream", Boolean, nullable=False),
    Column("schedule", JSONB),
    Column("report_if_empty", Boolean, nullable=False),
    Column("initial_record_time", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("after_seq", BigInteger, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_notified_at", DateTime(timezone=True)),
    Column("last_error", Text),
    schema="epcis",
)

"""PostgreSQL and Kafka adapters around the ledger's pure domain."""

"""Run the real Kafka broker and PostgreSQL server locally, without Docker (DESIGN.md §6)."""

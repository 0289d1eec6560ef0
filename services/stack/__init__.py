"""The real Kafka broker and PostgreSQL server, run locally without Docker.

See docs/architecture.md §6.
"""

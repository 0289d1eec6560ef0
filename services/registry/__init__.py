"""Parties, devices and API tokens (docs/architecture.md §3)."""

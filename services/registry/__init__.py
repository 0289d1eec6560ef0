"""Parties, devices and API tokens (DESIGN.md §3)."""

"""The auditor HTTP API of the ledger service."""

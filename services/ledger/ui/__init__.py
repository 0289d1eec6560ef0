"""The auditor web UI served by the ledger API at ``/ui/`` (server-rendered, no scripts)."""

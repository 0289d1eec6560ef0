"""The ledger consumer: poll → decode and validate → append (one transaction) → offsets."""

"""HTTP pieces both services share: problem+json errors, bearer tokens, health, metrics."""

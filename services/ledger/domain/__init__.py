"""The ledger's pure core: custody rules, reconstruction, hashing, Merkle proofs. No I/O."""

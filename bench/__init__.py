"""Benchmarks with same-run baselines (`make bench`)."""

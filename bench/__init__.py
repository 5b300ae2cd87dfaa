"""Benchmarks that print figures; not installed, run from the repository root."""

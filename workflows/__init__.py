"""Deterministic Temporal workflow code: no I/O, no clocks, no environment."""

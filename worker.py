"""Composition root of the Temporal worker (filled in by the engine issue)."""

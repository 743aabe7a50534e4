"""Helpers shared by test tiers: servers started from the venv binaries, fakes, sandbox."""

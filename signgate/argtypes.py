"""argparse value types shared by every ``signgate`` subcommand.

Each raises ``argparse.ArgumentTypeError`` with a reason, so a bad flag exits with code 2 and
a message naming the flag and what is wrong with it.
"""

from __future__ import annotations

import argparse


def whole(text: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer, optionally within ``[low, high]``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if low is not None and high is not None and not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} must be between {low} and {high}")
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"{text} must be >= {low}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"{text} must be <= {high}")
    return value


def count(text: str) -> int:
    """A whole number >= 0."""
    return whole(text, low=0)


def port(text: str) -> int:
    """A TCP port; 0 means any free port."""
    try:
        return whole(text, low=0, high=65535)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (0-65535)") from None


def seconds(text: str) -> float:
    """A duration in seconds, >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def positive(text: str) -> float:
    """A duration in seconds, > 0."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def rate(text: str) -> float:
    """A probability between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value

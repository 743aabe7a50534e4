"""``python -m signgate.webhook [register --url URL]``: the same as ``signgate webhook ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from signgate.commands.webhook import add_webhook_commands


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as the arguments of ``signgate webhook`` and run the command."""
    parser = argparse.ArgumentParser(prog="signgate")
    add_webhook_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["webhook", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

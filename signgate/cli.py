"""The ``signgate`` command: assembles the subcommands of :mod:`signgate.commands`.

Each subcommand module exposes a function that adds its parser to the subparsers and sets
``handler`` (a callable taking the parsed namespace and returning an exit code); add new ones
to ``COMMANDS``. Bad flags exit with code 2 and a message saying which flag and why; a handler
raising :class:`~signgate.commands.common.CommandError` exits with its code and message.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from signgate import __version__
from signgate.commands.approve import add_approve_command
from signgate.commands.batch import add_payout_command
from signgate.commands.common import CommandError
from signgate.commands.dev import add_dev_command
from signgate.commands.inspect import (
    add_cancel_command,
    add_list_command,
    add_resolve_command,
    add_status_command,
)
from signgate.commands.sandbox import add_sandbox_command
from signgate.commands.sign import add_sign_command
from signgate.commands.webhook import add_webhook_commands
from signgate.tracing import shutdown_tracing

Handler = Callable[[argparse.Namespace], int]

COMMANDS: list[Callable[[Any], None]] = [
    add_sandbox_command,
    add_dev_command,
    add_sign_command,
    add_payout_command,
    add_status_command,
    add_list_command,
    add_approve_command,
    add_cancel_command,
    add_resolve_command,
    add_webhook_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signgate", description="Policy-gated signing workflows on Temporal and Dfns."
    )
    parser.add_argument("--version", action="version", version=f"signgate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``signgate`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
    except CommandError as exc:
        print(f"signgate {args.command}: {exc.message}", file=sys.stderr, flush=True)
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    finally:
        shutdown_tracing()  # export the command's spans before any hard exit
    if argv is None and getattr(args, "hard_exit", False):
        # The Temporal client's runtime threads can crash interpreter finalisation
        # (temporalio/sdk-python#300): leave without it once the output is flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

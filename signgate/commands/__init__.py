"""The operator commands of ``signgate``: ``dev``, ``sign``, ``status``, ``list``, ``approve``,
``cancel``.

Each module exposes ``add_*_command(subparsers)`` functions that :mod:`signgate.cli` lists in
``COMMANDS``; :mod:`signgate.commands.common` holds what they share (where the dev stack is,
how to reach Temporal and Dfns, errors and output helpers).
"""

"""Every subcommand of ``signgate``: ``sandbox``, ``dev``, ``sign``, ``status``, ``list``,
``approve``, ``cancel``, ``webhook`` (and ``webhook register``).

Each module exposes ``add_*_command(subparsers)`` functions that :mod:`signgate.cli` lists in
``COMMANDS``; :mod:`signgate.commands.common` holds what they share (where the dev stack is,
how to reach Temporal and Dfns, errors and output helpers).
"""

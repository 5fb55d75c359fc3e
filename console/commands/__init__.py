"""Command groups of the ``citysoc`` CLI, one module each.

Every module in this package defines ``command`` (a click command or group);
:func:`console.cli.cli` adds them all.  A new command group is one module here.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


def discover() -> list[click.Command]:
    commands = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "command", None)
        if not isinstance(command, click.Command):
            raise RuntimeError(f"{module.__name__} defines no click 'command'")
        commands.append(command)
    return commands

"""A click group whose sub-commands are imported on first use (click's documented LazyGroup).

The group names each sub-command in a table ``{"name": "module:attr"}``; the module is imported
only when click needs that command: to run it, to print its help, or to list its one-line help
in the group's ``--help``. ``ledger --version`` imports none of them.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self._lazy_load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _lazy_load(self, cmd_name: str) -> click.Command:
        module_name, attr = self.lazy_subcommands[cmd_name].split(":", 1)
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{module_name}:{attr} is not a click command (lazy sub-command {cmd_name!r})")
        if command.name != cmd_name:  # pragma: no cover - a wrong table entry
            raise TypeError(f"{module_name}:{attr} is named {command.name!r}, listed as {cmd_name!r}")
        return command

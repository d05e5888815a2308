"""``%pai`` and ``%%pai``: the `pai` command line inside a notebook.

    %load_ext pai_lab
    %pai workspace ls                 # shows a table, returns a DataFrame
    members = %pai member ls -w team
    %%pai workspace create            # the cell body is passed as the command's file
    name: vision_team

The magics use the same parser as the CLI; a failure prints one line, as the CLI does, and
returns None, so a notebook never shows a traceback for a mistyped flag.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile

import pandas as pd
from IPython.core.magic import Magics, line_cell_magic, magics_class
from pydantic import BaseModel

from pai_lab.cli import build_parser, run
from pai_lab.cli.base import Context, UsageError, _CleanExit, jsonable
from pai_lab.errors import PaiError


def _cell_argv(argv: list[str], path: str) -> list[str]:
    """Put the cell's file where the command expects it (positional, or after its option)."""
    try:
        args, _ = build_parser().parse_known_args(argv)
        flag = getattr(args, "_cell_file", None)
    except (UsageError, _CleanExit):
        flag = None
    return [*argv, flag, path] if flag else [*argv, path]


@magics_class
class PaiMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self._client = None

    def _client_factory(self):
        if self._client is None:
            from pai_lab.client import PaiClient

            self._client = PaiClient()
        return self._client

    @line_cell_magic
    def pai(self, line: str, cell: str | None = None):
        """Run a `pai` command: `%pai workspace ls`, `%%pai eascmd create` with the JSON in the cell."""
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            print(f"error: cannot parse the command line: {exc}", file=sys.stderr)
            return None
        cell_path = None
        if cell is not None:
            fd, cell_path = tempfile.mkstemp(prefix="pai-cell-", suffix=".txt")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(cell)
            argv = _cell_argv(argv, cell_path)
        ctx = Context(self._client_factory, interactive=True, cell_file=cell_path)
        try:
            result = run(argv, ctx)
        except _CleanExit:
            return None
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
        except PaiError as exc:
            where = f" (field: {exc.field})" if exc.field else ""
            print(f"error: {exc.message}{where}", file=sys.stderr)
            return None
        finally:
            if cell_path:
                os.unlink(cell_path)
        if getattr(result, "json", False):
            return jsonable(result.data)
        if result.frame:
            rows = [r.model_dump() if isinstance(r, BaseModel) else r for r in result.data or []]
            frame = (
                pd.DataFrame.from_records(rows, columns=result.columns)
                if rows
                else pd.DataFrame(columns=result.columns)
            )
            return frame
        if result.data is None:
            return None
        return result.data.model_dump() if isinstance(result.data, BaseModel) else result.data


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(PaiMagics)

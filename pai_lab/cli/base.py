"""What every command shares: the parser that reports errors in one line, results, tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class UsageError(Exception):
    """A command line that does not parse: exit code 2, one line on stderr."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit; we keep it to one line
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None):
        if status:
            raise UsageError((message or "").strip() or f"{self.prog}: invalid arguments")
        if message:
            sys.stdout.write(message)
        raise _CleanExit()


class _CleanExit(Exception):
    """--help or --version printed its text; nothing more to do."""


@dataclass
class Result:
    """What a command produced: ``data`` for --json and magics, ``text`` for people."""

    data: Any = None
    text: str | None = None
    exit_code: int = 0
    frame: bool = False  # data is a list of rows: the magic returns it as a DataFrame
    columns: list[str] | None = None


@dataclass
class Context:
    """Handed to every command: a lazily connected client and where to write progress."""

    client_factory: Callable[[], Any]
    stdout: Any = field(default_factory=lambda: sys.stdout)
    stderr: Any = field(default_factory=lambda: sys.stderr)
    interactive: bool = True
    cell_file: str | None = None
    _client: Any = None

    @property
    def client(self):
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def workspace(self, name: str | None):
        return self.client.workspace(name or os.environ.get("PAI_LAB_WORKSPACE") or "default")

    def say(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)


def jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, (list, tuple)):
        return [jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, datetime):
        return data.isoformat()
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame
        return json.loads(data.to_json(orient="records", date_format="iso"))
    return data


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value)


def render_table(rows: list, columns: list[str], headers: list[str] | None = None) -> str:
    """A plain text table with a header row, columns as wide as their widest cell."""
    records = [r.model_dump() if isinstance(r, BaseModel) else dict(r) for r in rows]
    headers = headers or [c.upper() for c in columns]
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def rows_result(rows: list, columns: list[str], headers: list[str] | None = None) -> Result:
    return Result(data=rows, text=render_table(rows, columns, headers), frame=True, columns=columns)


def record_result(obj: Any, fields: list[str] | None = None) -> Result:
    data = jsonable(obj)
    keys = fields or list(data.keys())
    width = max(len(k) for k in keys) if keys else 0
    text = "\n".join(f"{k.ljust(width)}  {_cell(getattr(obj, k, data.get(k)))}" for k in keys)
    return Result(data=obj, text=text)


def read_spec_file(path: str, what: str) -> dict:
    """A JSON or YAML file of settings; errors name the file and the line."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise UsageError(f"{what} {path!r} is neither JSON nor YAML{where}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path!r} must hold an object (key: value pairs)")
    return data

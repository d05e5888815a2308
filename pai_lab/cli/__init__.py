"""The one argument parser behind the `pai` command and the `%pai` magics.

Each area registers its verbs in its own module, listed in :data:`COMMAND_MODULES`; :func:`run`
parses and executes a command line and returns a :class:`Result`, which :func:`main` prints (a
table, or JSON with ``--json``) and the magic hands back to the notebook as an object.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
from collections.abc import Callable

from pai_lab.cli import pai_tf
from pai_lab.cli.base import Context, Parser, Result, UsageError, _CleanExit, jsonable
from pai_lab.errors import PaiError

# The modules that add verbs, in the order `pai --help` lists them. Each defines register(sub, add_command).
# review adds verbs to the label and dataset groups, so it comes after them
COMMAND_MODULES = [
    "workspaces",
    "server",
    "datasets",
    "labeling",
    "review",
    "dlc",
    "pai_tf",
    "models",
    "eascmd",
    "pipeline",
]
# Groups whose verbs one module adds alone: a command line that starts with one builds (and imports) that
# module's parser only, so `pai dlc submit` reaches the server sooner (its ranks wait on it)
SOLE_GROUPS = {"dlc": "dlc"}


def _add_command(subparsers, name: str, func: Callable, help: str, cell_file: str | None = None, **kw) -> Parser:
    parser = subparsers.add_parser(name, help=help, description=help, **kw)
    parser.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    parser.set_defaults(_func=func, _cell_file=cell_file)
    return parser


def build_parser(group: str | None = None) -> Parser:
    """Every command's parser; with ``group`` (one of :data:`SOLE_GROUPS`), that group's alone."""
    parser = Parser(prog="pai", description="pai_lab: workspaces, datasets, labeling, training and serving.")
    if group is None:
        from pai_lab._version import __version__

        parser.add_argument("--version", action="version", version=f"pai_lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in COMMAND_MODULES if group is None else [SOLE_GROUPS[group]]:
        importlib.import_module(f"pai_lab.cli.{name}").register(sub, _add_command)
    return parser


def _default_client():
    from pai_lab.client import PaiClient

    return PaiClient()


def parse(argv: list[str]):
    return build_parser(argv[0] if argv and argv[0] in SOLE_GROUPS else None).parse_args(argv)


def run(argv: list[str], ctx: Context | None = None) -> Result:
    """Parse and run one command line. Raises UsageError or PaiError on failure."""
    ctx = ctx or Context(_default_client)
    args = parse(pai_tf.command_line(argv))  # `pai -name tensorflow... -D...` as the manual types it
    if args.json:  # keep stdout pure JSON; progress and notices go to stderr
        ctx.stdout = ctx.stderr
    result = args._func(ctx, args)
    result = result if isinstance(result, Result) else Result(data=result)
    result.json = args.json  # type: ignore[attr-defined]
    return result


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = run(argv)
    except _CleanExit:
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PaiError as exc:
        where = f" (field: {exc.field})" if exc.field else ""
        print(f"error: {exc.message}{where}", file=sys.stderr)
        return 2 if 400 <= exc.status < 500 else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if getattr(result, "json", False):
        print(json.dumps(jsonable(result.data), indent=1, ensure_ascii=False, default=str))
    elif result.text:
        print(result.text)
    if from_command_line:  # the process ends now: its last garbage collections skip what its imports made
        gc.freeze()  # (~60 ms of a `pai` call's ~300 ms of CPU)
    return result.exit_code


if __name__ == "__main__":  # python -m pai_lab.cli
    sys.exit(main())

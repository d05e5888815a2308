"""`pai dlc config`, `pai dlc completion bash|zsh` and `pai dlc get images`.

    pai dlc config --access_id ID --access_key SECRET [--endpoint URL] [--region R] [-w WORKSPACE]
    source <(pai dlc completion bash)
    pai dlc get images --framework=pytorch --device=cpu   # the server's environments

The profile (~/.dlc/config, mode 0600) keeps the AccessKey pair a seed script gives; nothing here
needs it. Its workspace is the default of every dlc verb, and an endpoint that is a URL names the
pai_lab server. Completion is a script generated from the parser itself, so it lists every verb.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pai_lab.cli import profiles
from pai_lab.cli.base import Result, UsageError

PROFILE = Path("~/.dlc/config")
SHELLS = ("bash", "zsh")


def _profile() -> dict:
    return profiles.read(PROFILE.expanduser())


def apply_profile(ctx, args) -> None:
    """Before any dlc verb: the profile's workspace is the default, its endpoint URL the server."""
    profile = _profile()
    if hasattr(args, "workspace") and not args.workspace:
        args.workspace = profile.get("workspace") or None
    profiles.use_endpoint(ctx, profile)


def with_profile(func):
    def run(ctx, args):
        apply_profile(ctx, args)
        return func(ctx, args)

    run.__name__ = getattr(func, "__name__", "run")
    run.__doc__ = func.__doc__
    return run


def config(ctx, args) -> Result:
    path = PROFILE.expanduser()
    profiles.write(
        path,
        {
            "access_id": args.access_id,
            "access_key": args.access_key,
            "endpoint": args.endpoint or "",
            "region": args.region or "",
            "workspace": args.workspace or "",
        },
    )
    return Result(data={"path": str(path)}, text=f"Configuration saved to: {path}")


# ----------------------------------------------------------------- completion


def _tree(parser: argparse.ArgumentParser, key: str, out: dict[str, list[str]]) -> None:
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                _tree(child, f"{key} {name}", out)
        else:
            words += [s for s in action.option_strings if s.startswith("--") or len(action.option_strings) == 1]
    out[key] = words


def completion_script(shell: str) -> str:
    from pai_lab.cli import build_parser

    tree: dict[str, list[str]] = {}
    _tree(build_parser(), "pai", tree)
    entries = "\n".join(f'  ["{key}"]="{" ".join(words)}"' for key, words in sorted(tree.items()))
    lines = []
    if shell == "zsh":
        lines += ["autoload -U +X compinit && compinit", "autoload -U +X bashcompinit && bashcompinit"]
    lines += [
        "# pai completion: source <(pai dlc completion bash)",
        "declare -gA _pai_words=(",
        entries,
        ")",
        "_pai_complete() {",
        '  [[ -n "$ZSH_VERSION" ]] && setopt localoptions ksharrays',
        '  local cur="${COMP_WORDS[COMP_CWORD]}" key="pai" i w',
        "  for ((i = 1; i < COMP_CWORD; i++)); do",
        '    w="${COMP_WORDS[i]}"',
        '    [[ "$w" == -* ]] && continue',
        '    [[ -n "${_pai_words["$key $w"]+x}" ]] && key="$key $w"',
        "  done",
        '  COMPREPLY=($(compgen -W "${_pai_words[$key]}" -- "$cur"))',
        "}",
        "complete -F _pai_complete pai",
    ]
    return "\n".join(lines)


def completion(ctx, args) -> Result:
    if args.shell not in SHELLS:
        raise UsageError(f"completion {args.shell!r}: scripts are generated for {' and '.join(SHELLS)}")
    return Result(data={"shell": args.shell}, text=completion_script(args.shell))


# ----------------------------------------------------------------- images


def get_images(ctx, args) -> Result:
    """The server's environments (where the ranks start), not this machine's."""
    from pai_lab.cli.eascmd import ascii_table
    from pai_lab.training.images import COLUMNS, HEADERS

    images = ctx.workspace(args.workspace).jobs.images(args.framework, args.device, args.provider, args.order)
    rows = [[getattr(i, c) for c in COLUMNS] for i in images]
    return Result(data=images, text=ascii_table(rows, HEADERS), frame=True, columns=COLUMNS)


def register_dlc(verbs, add_command, verbs_sub) -> None:
    p = add_command(
        verbs_sub, "config", config, "save a profile: AccessKey (kept, not needed here), endpoint, workspace"
    )
    p.add_argument("--access_id", required=True, help="AccessKey ID (kept in ~/.dlc/config)")
    p.add_argument("--access_key", required=True, help="AccessKey Secret (kept in ~/.dlc/config, mode 0600)")
    p.add_argument("--endpoint", default="", help="a pai_lab server URL, or the cloud endpoint (kept)")
    p.add_argument("--region", default="", help="kept for the record")
    p.add_argument("-w", "--workspace", default=None, help="the default workspace of dlc verbs")

    p = add_command(verbs_sub, "completion", completion, "print a bash or zsh completion script for pai")
    p.add_argument("shell", metavar="SHELL", help="bash or zsh (fish and powershell are not generated)")

    p = add_command(verbs["get"], "images", get_images, "list the environments a job's ranks can run in")
    p.add_argument("--order", default="desc", help="desc (default) or asc")
    p.add_argument("--framework", default=None, help="TFJob, PyTorchJob, tensorflow or pytorch")
    p.add_argument("--device", default=None, help="cpu or gpu")
    p.add_argument("--provider", default=None, help="Local, Conda or Docker")
    p.add_argument(
        "-w", "--workspace", default=None, help="the workspace (the list is the server's, for every workspace)"
    )

"""`pai -name tensorflow1120_ext -project algo_public -Dscript=... -Dcluster=...`: the PAI-TF command as the
manual types it (also `pai pai-tf -name ...`). The job is followed as PAI shows it, with its
`ps_job:R/F/T[p%] worker_job:R/F/T[p%]` lines, unless --detach."""

from __future__ import annotations

from pai_lab.cli.base import Result, UsageError
from pai_lab.cli.dlc_jobs import _follow
from pai_lab.training.schemas import PaiTfCommand

PARAMS = tuple(k for k in PaiTfCommand.model_fields if k not in ("name", "project"))


def register(sub, add_command) -> None:
    p = add_command(
        sub,
        "pai-tf",
        run,
        "run a PAI-TF job as the manual types it: pai -name tensorflow1120_ext -Dscript=FILE|DIR|TAR.GZ "
        "[-DentryFile=main.py] [-Dcluster=JSON] [-DcheckpointDir=DIR] [-DgpuRequired=N] ...",
    )
    p.add_argument("-name", dest="algorithm", default="tensorflow1120_ext", help="tensorflow1120_ext (or another)")
    p.add_argument("-project", dest="project", default="", help="noted; jobs run in the workspace (-w)")
    p.add_argument("-D", dest="params", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeat)")
    p.add_argument("-w", "--workspace")
    p.add_argument("--detach", action="store_true", help="print the job id and return; do not follow it")
    p.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")


def command_line(argv: list[str]) -> list[str]:
    """The manual's `pai -name ... ;` as this CLI's `pai pai-tf -name ...` (its trailing `;` dropped)."""
    if not argv or not (argv[0] in ("-name", "-project") or argv[0].startswith(("-name=", "-project="))):
        return argv
    argv = list(argv)
    if argv[-1] == ";":
        argv.pop()
    elif argv[-1].endswith(";"):
        argv[-1] = argv[-1][:-1]
    return ["pai-tf", *argv]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def run(ctx, args) -> Result:
    params: dict[str, str] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or key not in PARAMS:
            raise UsageError(f"-D{item}: write -DKEY=VALUE with KEY one of {', '.join(PARAMS)}")
        params[key] = _unquote(value)
    if "script" not in params:
        raise UsageError("pai -name tensorflow: -Dscript is required (a .py file, a folder or a .tar.gz)")
    ws = ctx.workspace(args.workspace)
    extra = {"project": args.project} if args.project else {}
    job = ws.jobs.pai_tf(params.pop("script"), name=args.algorithm, **extra, **params)
    ctx.say(f"[1] JobId: {job.id}")
    for warning in job.detail.warnings:
        ctx.say(f"[WARN] {warning}")
    if args.detach:
        ctx.say(f"[Info] Job [{job.id}] is [{job.detail.state}]")
        return Result(data=job.detail)
    return _follow(ctx, job, args.timeout)

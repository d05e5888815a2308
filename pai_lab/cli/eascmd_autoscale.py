"""`pai eascmd autoscale`: a service's autoscaler, with EAS's -D keys.

    pai eascmd autoscale <service> -Dmin=1 -Dmax=4 -Dstrategies.qps=50 [-Dstrategies.cpu=80]
        [-Dbehavior.scaleUp.stabilizationWindowSeconds=0] [-Dbehavior.scaleDown.stabilizationWindowSeconds=300]
    pai eascmd autoscale desc <service>       the policy, current and target instances, scale events
    pai eascmd autoscale rm <service>         remove it (the service keeps its instances)

The service may be given as ``[region]/<service>``, as the manual writes it.
"""

from __future__ import annotations

import uuid

from pai_lab.cli.base import Result, UsageError

ACTIONS = ("desc", "rm")
WINDOW_KEYS = {
    "behavior.scaleUp.stabilizationWindowSeconds": "scale_up_window",
    "behavior.scaleDown.stabilizationWindowSeconds": "scale_down_window",
}
KEYS = ("min", "max", "strategies.qps", "strategies.cpu", *WINDOW_KEYS)


def register_autoscale(verb) -> None:
    p = verb(
        "autoscale",
        autoscale,
        "set a service's autoscaler (-Dmin= -Dmax= -Dstrategies.qps= / .cpu=); `autoscale desc|rm <service>`",
    )
    p.add_argument("target", nargs="+", metavar="[desc|rm] SERVICE", help="[region]/<service>, after desc or rm")
    p.add_argument(
        "-D",
        dest="defines",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"one of {', '.join(KEYS)} (repeatable)",
    )


def _parse(defines: list[str]) -> dict:
    """-D pairs as the client's keyword arguments; a key or value that cannot be is named."""
    out: dict = {}
    for item in defines:
        key, sep, raw = item.partition("=")
        if not sep or key not in KEYS:
            raise UsageError(
                f"pai eascmd autoscale: unknown -D{key or item}; use {', '.join('-D' + k + '=...' for k in KEYS)}"
            )
        number: float
        try:
            number = float(raw)
        except ValueError:
            raise UsageError(f"pai eascmd autoscale: -D{key} takes a number, got {raw!r}") from None
        if key in ("min", "max") or key in WINDOW_KEYS:
            if number != int(number):
                raise UsageError(f"pai eascmd autoscale: -D{key} takes a whole number, got {raw!r}")
            number = int(number)
        out[WINDOW_KEYS.get(key, key.removeprefix("strategies."))] = number
    return out


def _name(text: str) -> str:
    return text.rsplit("/", 1)[-1]  # [region]/<service>: the region is a label here


def autoscale(ctx, args) -> Result:
    from pai_lab.cli.eascmd import REGION, _ws, ascii_table

    if len(args.target) > 2 or (len(args.target) == 2 and args.target[0] not in ACTIONS):
        raise UsageError("pai eascmd autoscale: give <service> with -D keys, or `desc <service>` / `rm <service>`")
    action = args.target[0] if len(args.target) == 2 else "set"
    name = _name(args.target[-1])
    svc = _ws(ctx, args).services.get(name)
    if action == "rm":
        if args.defines:
            raise UsageError("pai eascmd autoscale rm: takes no -D keys")
        scaler = svc.autoscaler
        if scaler is None:
            raise UsageError(f"service {name} has no autoscaler")
        scaler.remove()
        ctx.say(f"[RequestId]: {str(uuid.uuid4()).upper()}")
        ctx.say(f"[OK] Autoscaler of service [{name}] in region [{REGION}] was removed")
        return Result(data={"removed": name})
    if action == "set":
        given = _parse(args.defines)
        missing = [k for k in ("min", "max") if k not in given]
        if missing or not ({"qps", "cpu"} & set(given)):
            need = [f"-D{k}=N" for k in missing] + ([] if {"qps", "cpu"} & set(given) else ["-Dstrategies.qps=N"])
            raise UsageError(f"pai eascmd autoscale: give {' '.join(need)} (see `pai eascmd autoscale --help`)")
        scaler = svc.autoscale(given.pop("min"), given.pop("max"), **given)
        ctx.say(f"[RequestId]: {str(uuid.uuid4()).upper()}")
        ctx.say(f"[OK] Autoscaler of service [{name}] in region [{REGION}] is set: {scaler.summary()}")
        return Result(data=scaler.info)
    if args.defines:
        raise UsageError("pai eascmd autoscale desc: takes no -D keys")
    scaler = svc.autoscaler
    if scaler is None:
        raise UsageError(
            f"service {name} has no autoscaler; set one with "
            f"`pai eascmd autoscale {name} -Dmin=1 -Dmax=4 -Dstrategies.qps=50`"
        )
    info = scaler.info
    up, down = scaler.windows()
    last = info.events[0] if info.events else None
    fields = [
        ("ServiceName", info.service),
        ("Region", REGION),
        ("Min", info.min),
        ("Max", info.max),
        ("Strategies", ", ".join(f"{m}={t:g}" for m, t in scaler.strategies.items())),
        ("ScaleUpStabilizationWindow", f"{up}s"),
        ("ScaleDownStabilizationWindow", f"{down}s"),
        ("CurrentInstance", info.instances),
        ("RunningInstance", info.ready),
        ("TargetInstance", info.target),
        ("Metrics", ", ".join(f"{k}={v:g}" for k, v in info.metrics.items())),
        ("LastScale", f"{last.at:%Y-%m-%d %H:%M:%S} {last.kind}: {last.message}" if last else ""),
    ]
    return Result(data=info, text=ascii_table([[k, v] for k, v in fields], ["FIELD", "VALUE"]))

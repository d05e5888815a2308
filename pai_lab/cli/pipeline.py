"""`pai pipeline run|ls|get|logs|stop|suspend|resume|retry|lineage`: pipeline runs from the shell (a manifest file, as
``Pipeline.to_yaml()`` writes it) and in a notebook (``%%pai pipeline run`` with the manifest in the cell)."""

from __future__ import annotations

from pai_lab.cli.base import Result, UsageError, read_spec_file, record_result, rows_result

RUN_COLUMNS = ["id", "name", "pipeline", "status", "created_by", "created_at", "finished_at"]
DETAIL_COLUMNS = ["id", "name", "pipeline", "status", "reason", "attempt", "created_by", "started_at", "finished_at"]
NODE_COLUMNS = ["name", "identifier", "status", "cached", "finished_at", "reason"]
LINEAGE_COLUMNS = ["version", "run_id", "run_name", "run_status", "step", "operator", "created_by", "created_at"]


def register(sub, add_command) -> None:
    pl = sub.add_parser(
        "pipeline", help="pipeline runs: run, ls, get, logs, stop, suspend, resume, retry, lineage"
    ).add_subparsers(dest="verb", metavar="VERB", required=True)
    p = add_command(pl, "run", pipeline_run, "run a pipeline from its manifest (YAML or JSON)")
    p.add_argument("manifest", help="the manifest file (Pipeline.to_yaml())")
    p.add_argument(
        "-a",
        "--argument",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for one of the pipeline's inputs (repeatable)",
    )
    p.add_argument("--arguments", help="a JSON/YAML file of arguments")
    p.add_argument("--name", help="the run's name")
    p.add_argument("--no-cache", action="store_true", help="run every step, even one whose inputs were run before")
    p.add_argument("--wait", action="store_true", help="wait for the run to end, printing its steps' logs")
    p.add_argument("-w", "--workspace")
    p = add_command(pl, "ls", pipeline_ls, "pipeline runs of the workspace, newest first")
    p.add_argument("--status")
    p.add_argument("--name")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("-w", "--workspace")
    for verb, func, text in (
        ("get", pipeline_get, "one run and its steps"),
        ("stop", pipeline_stop, "terminate a run"),
        ("suspend", pipeline_suspend, "hold a run: its running steps finish, no new step starts"),
        ("resume", pipeline_resume, "let a suspended run start its next steps again"),
        ("retry", pipeline_retry, "run a failed run's failed and later steps again"),
    ):
        p = add_command(pl, verb, func, text)
        p.add_argument("run_id")
        p.add_argument("-w", "--workspace")
    p = add_command(pl, "logs", pipeline_logs, "a step's log lines")
    p.add_argument("run_id")
    p.add_argument("--node", "-n", required=True, help="the step")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--tail", type=int, default=0, help="the last N lines instead (like tail -n)")
    p.add_argument("-w", "--workspace")
    p = add_command(pl, "lineage", pipeline_lineage, "which runs and steps made a dataset's or model's versions")
    p.add_argument("kind", choices=["dataset", "model", "service"])
    p.add_argument("name")
    p.add_argument("--version", help="only this version")
    p.add_argument("-w", "--workspace")


def _arguments(args) -> dict:
    found = read_spec_file(args.arguments, "arguments file") if args.arguments else {}
    for item in args.argument:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--argument {item!r}: write NAME=VALUE")
        found[name] = value
    return found


def _detail(run) -> Result:
    result = record_result(run.detail, DETAIL_COLUMNS)
    nodes = rows_result(run.detail.nodes, NODE_COLUMNS)
    result.text = f"{result.text}\n\n{nodes.text}"
    return result


def pipeline_run(ctx, args) -> Result:
    manifest = read_spec_file(args.manifest, "pipeline manifest")
    run = ctx.workspace(args.workspace).pipelines.run(
        manifest, arguments=_arguments(args), name=args.name, cache=not args.no_cache
    )
    ctx.say(f"[Info] Pipeline run [{run.id}] created")
    if args.wait:
        from pai_lab.client.pipelines import PipelineRunError

        try:
            run.wait_for_completion(show_outputs=not args.json)
        except PipelineRunError as exc:
            ctx.say(f"[Error] {exc}")
        result = _detail(run)
        result.exit_code = 0 if run.detail.status == "Succeeded" else 1
        return result
    return _detail(run)


def pipeline_ls(ctx, args) -> Result:
    return rows_result(
        ctx.workspace(args.workspace).pipelines.list(status=args.status, name=args.name, limit=args.limit), RUN_COLUMNS
    )


def pipeline_get(ctx, args) -> Result:
    return _detail(ctx.workspace(args.workspace).pipelines.get(args.run_id))


def pipeline_stop(ctx, args) -> Result:
    run = ctx.workspace(args.workspace).pipelines.get(args.run_id).terminate()
    ctx.say(f"[Info] Pipeline run [{run.id}]: terminate requested")
    return _detail(run)


def pipeline_suspend(ctx, args) -> Result:
    run = ctx.workspace(args.workspace).pipelines.get(args.run_id).suspend()
    ctx.say(f"[Info] Pipeline run [{run.id}]: suspend requested")
    return _detail(run)


def pipeline_resume(ctx, args) -> Result:
    run = ctx.workspace(args.workspace).pipelines.get(args.run_id).resume()
    ctx.say(f"[Info] Pipeline run [{run.id}]: resume requested")
    return _detail(run)


def pipeline_retry(ctx, args) -> Result:
    run = ctx.workspace(args.workspace).pipelines.get(args.run_id).retry()
    ctx.say(f"[Info] Pipeline run [{run.id}] retried (attempt {run.detail.attempt})")
    return _detail(run)


def pipeline_logs(ctx, args) -> Result:
    run = ctx.workspace(args.workspace).pipelines.get(args.run_id)
    lines = run.get_logs(args.node, args.offset, args.size, tail=args.tail)
    return Result(data=lines, text="\n".join(lines))


def pipeline_lineage(ctx, args) -> Result:
    from pai_lab.client.lineage import fetch

    lineage = fetch(ctx.workspace(args.workspace), args.kind, args.name, args.version)
    return rows_result(lineage.records, LINEAGE_COLUMNS)

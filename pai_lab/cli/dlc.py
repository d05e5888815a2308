"""`pai dlc ...`: the PAI-DLC verbs (submit, stop, logs, get, create, delete).

The verbs are shared by several areas: data and code sources belong to the dataset registry,
jobs to training. Each area adds its object kinds to the verbs in its own module (listed in
:data:`KIND_MODULES`) through ``register_dlc(verbs, add_command)``, where ``verbs`` maps a verb to its
sub-parsers (``verbs["create"].add_parser("data_source", ...)``); ``stop`` and ``logs`` map to their own
parser, as they take a job id and no kind. ``config`` and ``completion`` (dlc_env) are verbs of their own.
"""

from __future__ import annotations

from pai_lab.cli import dlc_env, dlc_jobs, dlc_sources, job_compare, job_priority

VERBS = {
    "submit": "submit a training job (tfjob)",
    "stop": "stop a job",
    "logs": "print a job's logs for one pod",
    "get": "show jobs, images, data sources or code sources",
    "create": "create a data source or code source",
    "delete": "delete a data source or code source",
}
DIRECT_VERBS = ("stop", "logs")
KIND_MODULES = [dlc_sources, dlc_jobs, job_priority, job_compare, dlc_env]


def register(sub, add_command) -> None:
    dlc = sub.add_parser(
        "dlc", help="PAI-DLC compatible verbs: submit, stop, logs, get, create, delete, update, compare"
    )
    verbs_sub = dlc.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs = {}
    for verb, text in VERBS.items():
        p = verbs_sub.add_parser(verb, help=text, description=text)
        # `stop` and `logs` take a job id directly (no kind): the training module adds their arguments
        # to the verb's own parser; the other verbs get one sub-parser per object kind.
        verbs[verb] = p if verb in DIRECT_VERBS else p.add_subparsers(dest="kind", metavar="KIND", required=True)

    def add(subparsers, name, func, help, **kw):  # every verb but config reads the profile first
        runner = func if func is dlc_env.config else dlc_env.with_profile(func)
        return add_command(subparsers, name, runner, help, **kw)

    for module in KIND_MODULES:
        module.register_dlc(verbs, add, verbs_sub)
    for verb in DIRECT_VERBS:  # stop and logs set their function on the verb's own parser
        verbs[verb].set_defaults(_func=dlc_env.with_profile(verbs[verb].get_default("_func")))

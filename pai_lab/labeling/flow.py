"""The labeling flow: which package moves are allowed in which state, for each task flow.

A task's items are split into packages; a package goes through the stages of the task's flow
(``label``, ``label-check``, ``label-accept``, ``label-check-accept``). In each stage it waits in
a pool until someone claims it, is worked on by its holder, and is submitted (label) or
passed (check, accept) to the next stage. A checker or acceptor may instead reject it, which
returns it to its last labeler with the reviewer's comment; the rework is a new revision of
each answer, the earlier ones stay in the history::

                 claim                 submit                 claim                  pass
   label_pool ─────────► labeling ──────────► check_pool ─────────► checking ─────────► accept_pool ...
       ▲   ◄─────────────  │  ▲                                        │
       │     release       │  │               reject (comment)         │
       │                   │  └────────────────────────────────────────┘
       │                   │                                            (the same from accepting)
       └── release ◄───────┘  reassign: holder changes, state stays

   accept_pool ──claim──► accepting ──pass──► done          (a flow without a stage skips it:
                               └──reject──► labeling         label-only goes labeling ──submit──► done)

``modify`` is not a move: a checker or acceptor who holds a package stores corrected answers for
the stage (``-check`` / ``-verify`` in the export) and then passes it.

The task's state follows from its packages: ``Labeling`` while any package is in the label
stage, then ``Checking``, ``Accepting``, ``Completed`` when every package is done; ``Offline``
while an admin has taken it offline (no claims or submissions, nothing else changes).
"""

from __future__ import annotations

from typing import Any, TypedDict

from pai_lab.errors import Conflict

FLOWS = ("label", "label-check", "label-accept", "label-check-accept")
STAGES = ("label", "check", "accept")
POOL = {"label": "label_pool", "check": "check_pool", "accept": "accept_pool"}
WORKING = {"label": "labeling", "check": "checking", "accept": "accepting"}
DONE = "done"
PACKAGE_STATES = ("label_pool", "labeling", "check_pool", "checking", "accept_pool", "accepting", DONE)
STAGE_OF = {**{v: k for k, v in POOL.items()}, **{v: k for k, v in WORKING.items()}}
# the item column (and export suffix) each stage's answer is stored in, and where it came from
STAGE_COLUMN = {"label": "label", "check": "check", "accept": "verify"}
ORIGIN_COLUMN = {"label": "label_origin", "check": "check_origin", "accept": "verify_origin"}


# The stage table, as the labeler is sent it: per stage, the answer column it writes, the answers an
# item opens with (the stage's own first), the task counter its first answer moves, and which items
# it shows; an item is done in the stage once it has the stage's answer or is skipped (a check also
# passes over the items not sampled). item_done() and stage_items() apply it.
class StageRow(TypedDict):
    column: str
    shows: list[str]
    counter: str
    items: str


STAGE_TABLE: dict[str, StageRow] = {
    stage: StageRow(
        column=STAGE_COLUMN[stage],
        shows=[STAGE_COLUMN[s] for s in reversed(STAGES[: i + 1])],
        counter=counter,
        items=items,
    )
    for i, (stage, counter, items) in enumerate(
        (
            ("label", "labeled", "all"),
            ("check", "checked", "sampled, not skipped"),
            ("accept", "accepted", "not skipped"),
        )
    )
}

# task states (iTAG's names)
INITIALIZING, LABELING, CHECKING, ACCEPTING, COMPLETED, OFFLINE = (
    "Initializing",
    "Labeling",
    "Checking",
    "Accepting",
    "Completed",
    "Offline",
)
TASK_STATE_OF_STAGE = {"label": LABELING, "check": CHECKING, "accept": ACCEPTING}

ACTIONS = ("claim", "submit", "pass", "reject", "release", "reassign")


def stages(flow: str) -> list[str]:
    return {
        "label": ["label"],
        "label-check": ["label", "check"],
        "label-accept": ["label", "accept"],
        "label-check-accept": ["label", "check", "accept"],
    }[flow]


def next_state(flow: str, stage: str) -> str:
    """Where a package goes when its ``stage`` is finished."""
    order = stages(flow)
    i = order.index(stage)
    return POOL[order[i + 1]] if i + 1 < len(order) else DONE


def _target(flow: str, state: str, action: str) -> str | None:
    stage = STAGE_OF.get(state)
    if stage is None or stage not in stages(flow):  # a package that is done has no next state
        return None
    target: str | None = None
    if action == "claim" and state in POOL.values():
        target = WORKING[stage]
    elif action == "submit" and state == WORKING["label"]:
        target = next_state(flow, "label")
    elif action == "pass" and state in (WORKING["check"], WORKING["accept"]):
        target = next_state(flow, stage)
    elif action == "reject" and state in (WORKING["check"], WORKING["accept"]):
        target = WORKING["label"]
    elif action == "release" and state in WORKING.values():
        target = POOL[stage]
    elif action == "reassign" and state in set(WORKING.values()) | set(POOL.values()):
        target = WORKING[stage]
    return target


def move(flow: str, state: str, action: str) -> str:
    """The package state after ``action`` in ``state``; Conflict if the flow does not allow it."""
    target = _target(flow, state, action)
    if target is None:
        allowed = allowed_actions(flow, state)
        raise Conflict(
            f"cannot {action} a package that is {state.replace('_', ' ')}"
            + (f"; allowed now: {', '.join(allowed)}" if allowed else "; it is finished"),
            "state",
        )
    return target


def allowed_actions(flow: str, state: str) -> list[str]:
    return [a for a in ACTIONS if _target(flow, state, a) is not None]


def task_state(flow: str, package_states: set[str], offline: bool) -> str:
    """The task's state from the set of its packages' states."""
    if offline:
        return OFFLINE
    for stage in stages(flow):
        if package_states & {POOL[stage], WORKING[stage]}:
            return TASK_STATE_OF_STAGE[stage]
    return COMPLETED


def item_done(stage: str, item: dict) -> bool:
    """Whether ``item`` (its columns by name) needs nothing more in ``stage``."""
    return (
        item.get(STAGE_TABLE[stage]["column"]) is not None
        or item.get("skipped") is not None
        or (stage == "check" and not item.get("sampled"))
    )


def item_done_clause(stage: str, items: Any) -> Any:
    """:func:`item_done` as a SQL condition over the items table ``items`` (its columns by name), for
    counting a package's done items in the store: the same rule, written once beside it."""
    clause = getattr(items, STAGE_TABLE[stage]["column"]).is_not(None) | items.skipped.is_not(None)
    if stage == "check":
        clause = clause | items.sampled.is_(False)
    return clause


def stage_items(stage: str, items: list[dict]) -> list[dict]:
    """The items a stage shows: a check only the sampled ones, check and accept none skipped."""
    if stage == "check":
        return [i for i in items if i.get("sampled") and i.get("skipped") is None]
    if stage == "accept":
        return [i for i in items if i.get("skipped") is None]
    return items


def shown_answer(stage: str, item: dict):
    """The answer an item opens with in ``stage``: its own, else the one the stage before gave."""
    return next((item[c] for c in STAGE_TABLE[stage]["shows"] if item.get(c)), None)

"""The labeling domain's functions in one namespace, for the server's routes, the clients and
the tests. Each lives in the module that owns its rules:

- :mod:`pai_lab.labeling.tasks`: tasks and custom templates
- :mod:`pai_lab.labeling.intake`: items into a task (manifest lines, packaging, imported answers)
- :mod:`pai_lab.labeling.packages`: packages through the flow
- :mod:`pai_lab.labeling.orders`: the order of the packages nobody has started
- :mod:`pai_lab.labeling.items`: items, answers and suggestions (pre-labels)
- :mod:`pai_lab.labeling.stats`: progress, per-person counts, agreement
"""

from __future__ import annotations

from pai_lab.labeling.intake import NewItem, min_package_size
from pai_lab.labeling.items import (
    attach_prelabels,
    item_history,
    list_items,
    package_items,
    store_answer,
    submit_answer,
)
from pai_lab.labeling.orders import order, order_task
from pai_lab.labeling.packages import claim, list_packages, reassign, release, review, submit_package
from pai_lab.labeling.stats import stats
from pai_lab.labeling.tasks import (
    copy_task,
    create_task,
    create_template,
    delete_task,
    delete_template,
    get_task,
    list_tasks,
    list_templates,
    resolve_template,
    set_offline,
    set_people,
    task_row,
)

__all__ = [
    "NewItem",
    "attach_prelabels",
    "claim",
    "copy_task",
    "create_task",
    "create_template",
    "delete_task",
    "delete_template",
    "get_task",
    "item_history",
    "list_items",
    "list_packages",
    "list_tasks",
    "list_templates",
    "min_package_size",
    "order",
    "order_task",
    "package_items",
    "reassign",
    "release",
    "resolve_template",
    "review",
    "set_offline",
    "set_people",
    "stats",
    "store_answer",
    "submit_answer",
    "submit_package",
    "task_row",
]

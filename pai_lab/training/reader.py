"""Inside a rank: read the job's data sources (``--data_sources``) as tf.data, sharded per rank.

    import pai_lab.training as pai
    names = pai.class_names()                                   # the job's only data source
    train = pai.dataset(image_size=(32, 32), subset="training")  # (image, label), this rank's share
    pai.save_class_names(names)                                 # beside the chief's SavedModel

The control plane wrote each source's manifest lines, data type, class names and storage options into
the job's folder (:mod:`pai_lab.training.data`); ``PAI_LAB_DATA_SOURCES`` names that file. TensorFlow
is imported only when a dataset is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "PAI_LAB_DATA_SOURCES"


def _sources() -> tuple[Path, list[dict]]:
    path = os.environ.get(ENV_VAR)
    if not path:
        raise RuntimeError(
            "this process has no data sources: submit the job with data_sources=[...] (a dataset "
            "NAME, NAME:VERSION or task:TASK), or set PAI_LAB_DATA_SOURCES to a sources.json"
        )
    file = Path(path)
    try:
        sources = json.loads(file.read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"cannot read the job's data sources from {path}: {exc}") from None
    return file.parent, sources


def source_info(source: str | int | None = None) -> dict:
    """What the control plane resolved for one data source: name, kind, data_type, class_names, items."""
    _folder, sources = _sources()
    if source is None:
        if len(sources) != 1:
            raise ValueError(
                f"the job has {len(sources)} data sources; name one: {', '.join(s['name'] for s in sources)}"
            )
        return sources[0]
    if isinstance(source, int):
        return sources[source]
    for info in sources:
        if source in (
            info["name"],
            info.get("dataset"),
            info.get("task"),
            info.get("task_id"),
            f"task:{info.get('task')}",
            f"task:{info.get('task_id')}",
        ):
            return info
    raise ValueError(f"the job has no data source {source!r}; its sources are: {', '.join(s['name'] for s in sources)}")


def class_names(source: str | int | None = None) -> list[str]:
    """The source's classes in a stable order: the labeling task's label order, else sorted names."""
    return list(source_info(source)["class_names"])


def lines(source: str | int | None = None) -> list[dict]:
    """The source's manifest lines as snapshotted at submit time (answers in iTAG's shape)."""
    folder, _sources_list = _sources()
    info = source_info(source)
    path = folder / info["manifest"]
    if not path.is_file():
        raise FileNotFoundError(f"the manifest of data source {info['name']!r} is missing ({path})")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _reader(options: dict):
    def read(uri: str) -> bytes:
        import fsspec

        with fsspec.open(uri, "rb", **options) as f:
            return f.read()

    return read


def dataset(
    source: str | int | None = None,
    *,
    image_size: tuple[int, int] = (32, 32),
    channels: int = 3,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    subset: str | None = None,
    validation_every: int = 10,
    cache: bool | str = False,
):
    """A ``tf.data.Dataset`` of (input, label) for this rank (every n-th item of n training ranks).

    Images are decoded and resized to ``image_size``, float32 in [0, 1]; texts are tf.string; detection
    items give ``(image, {"boxes": [n, 4] ymin, xmin, ymax, xmax in [0, 1], "labels": [n] int64})``,
    ragged when batched. Unlabelled items are left out. ``subset`` "training" or "validation" holds out
    every ``validation_every``-th item for validation (the same items in every rank and every run).
    ``cache=True`` keeps the decoded items in memory after the first epoch (or in files at a path), so
    later epochs read nothing from disk or S3 again.
    The dataset has ``class_names``, ``item_count`` (this rank's items) and ``total_count`` (all ranks'),
    so every rank can compute the same number of steps.
    """
    from pai_lab.datasets.readers import to_tf_dataset

    info = source_info(source)
    items = lines(source)
    if subset not in (None, "training", "validation"):
        raise ValueError("subset is None, 'training' or 'validation'")
    keep = None
    if subset is not None:
        every = max(2, int(validation_every))
        wanted = subset == "validation"

        def keep(n: int) -> bool:
            return (n % every == every - 1) == wanted

    names = info["class_names"] or None
    ds = to_tf_dataset(
        items,
        data_type=info["data_type"],
        class_names=names,
        image_size=(image_size[0], image_size[1]),
        channels=channels,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        keep=keep,
        cache=cache,
        read_bytes=_reader(info.get("storage_options") or {}),
    )
    whole = _total_count(items, info, keep)
    ds.total_count = whole
    return ds


def _total_count(items: list[dict], info: dict, keep) -> int:
    """How many usable items the subset has over all ranks (labelled, with a source)."""
    from pai_lab.datasets.readers import boxes, class_label, folder_label

    names = set(info["class_names"])
    count = 0
    for n, line in enumerate(items):
        source = (line.get("data") or {}).get("source")
        if not isinstance(source, str) or (keep is not None and not keep(n)):
            continue
        if info["data_type"] == "detection":
            count += bool(boxes(line))
        else:
            label = class_label(line) or folder_label(source)
            count += label in names
    return count


def save_class_names(names, folder: str | None = None) -> str:
    """Write the class list as ``class_names.json`` (a JSON list of strings) at the root of the SavedModel
    folder (default: :func:`pai_lab.training.model_dir` of this rank), so a served model answers with
    label names. Returns the file's path."""
    from pai_lab.training.metrics import model_dir

    target = Path(folder or model_dir())
    target.mkdir(parents=True, exist_ok=True)
    path = target / "class_names.json"
    path.write_text(json.dumps([str(n) for n in names], ensure_ascii=False), encoding="utf-8")
    return str(path)

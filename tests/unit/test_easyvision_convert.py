"""EasyVision convert: the manual's example CSVs to TFRecord for every model type, read back with
TensorFlow's own tf.data and parse_single_example."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.convert import convert
from pai_lab.labeling.formats import easyvision_masks as masks
from pai_lab.labeling.formats.tfrecord_types import features

pytestmark = pytest.mark.tf
EXAMPLES = Path(__file__).parents[1] / "fixtures" / "golden" / "easyvision"


@pytest.fixture
def folder(tmp_path) -> Path:
    """The manual's examples beside their images: a.jpg, b.jpg (800 x 800) and the mask a.png."""
    for name, colour in (("a", (200, 10, 10)), ("b", (10, 200, 10))):
        Image.new("RGB", (800, 800), colour).save(tmp_path / f"{name}.jpg")
    mask = np.zeros((800, 800), dtype=np.uint8)
    mask[10:60, 20:120] = 1
    mask[300:420, 500:700] = 2
    (tmp_path / "a.png").write_bytes(masks.encode(mask))
    for csv in EXAMPLES.glob("*.csv"):
        text = csv.read_text(encoding="utf-8").replace("http://ossgw.alicdn.com/a.png", "a.png")
        (tmp_path / csv.name).write_text(
            text.replace("http://a.jpg", "a.jpg").replace("http://b.jpg", "b.jpg"), "utf-8"
        )
    return tmp_path


def run(folder: Path, shape: str, config: str, **kw) -> tuple[sc.ExportResult, dict[str, dict]]:
    """Convert the example CSV of ``shape``; the result and every example by its 数据ID."""
    import tensorflow as tf

    body = sc.ConvertRequest(
        label_file=str(folder / f"{shape}.csv"),
        output_tfrecord=str(folder / "out" / shape),
        convert_param_config=config,
        **kw,
    )
    result = convert(body)
    model_type = config.split("--model_type", 1)[1].split()[0]
    shards = [f for f in result.files if f.endswith(".tfrecord")]
    parsed = {}
    for record in tf.data.TFRecordDataset(shards):
        ex = tf.io.parse_single_example(record, features(model_type))
        ex = {k: tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy() for k, v in ex.items()}
        parsed[ex["image/key"].decode()] = ex
    return result, parsed


def test_classification_labels_are_class_list_ids(folder):
    (folder / "classes.txt").write_text("身份证\n护照\n", encoding="utf-8")
    result, ex = run(
        folder, "classification", "--model_type CLASSIFICATION --class_list_file classes.txt --test_ratio 0"
    )
    assert ex["1"]["image/class/label"].tolist() == [1] and ex["2"]["image/class/label"].tolist() == [1]
    assert ex["1"]["image/class/text"].tolist() == ["护照".encode()]
    image = Image.open(io.BytesIO(ex["1"]["image/encoded"]))
    assert image.format == "JPEG" and image.size == (800, 800) and ex["1"]["image/format"] == b"jpeg"
    assert Path(result.files[-1]).read_text(encoding="utf-8") == "身份证\n护照\n"
    assert all(Path(f).name.startswith("classification_train_") for f in result.files[:-1])


def test_multi_label_with_a_many_to_one_class_list(folder):
    (folder / "classes.txt").write_text("护照\n身份证:证件\n港澳通行证:证件\n", encoding="utf-8")
    _, ex = run(folder, "multi-label", "--model_type CLASSIFICATION --class_list_file classes.txt --test_ratio 0")
    assert ex["1"]["image/class/label"].tolist() == [0, 1] and ex["2"]["image/class/label"].tolist() == [0, 1]
    assert ex["2"]["image/class/text"].tolist() == ["护照".encode(), "证件".encode()]


def test_detection_boxes_and_the_unknown_class_policies(folder):
    config = "--model_type DETECTION --class_list 类别2 --test_ratio 0"
    with pytest.raises(BadInput) as err:
        run(folder, "detection", config)
    assert err.value.field == "options.class_list" and "类别1" in err.value.message
    _, ex = run(folder, "detection", config + " --unknown_class ignore")
    assert ex["1"]["image/object/class/label"].tolist() == [0]
    assert ex["1"]["image/object/bbox/xmin"] == pytest.approx([342.11 / 800])
    _, ex = run(folder, "detection", config + " --default_class 其他 --ignore_class 类别2", overwrite=True)
    assert ex["2"]["image/object/class/text"].tolist() == ["其他".encode(), "类别2".encode()]
    assert ex["2"]["image/object/class/label"].tolist() == [1, 0]
    assert ex["2"]["image/object/ignore"].tolist() == [0, 1]
    assert ex["2"]["image/object/bbox/ymax"] == pytest.approx([50.35 / 800, 99.84 / 800])
    assert ex["1"]["image/object/polygon"][:2] == pytest.approx([306.73 / 800, 517.59 / 800])
    assert ex["1"]["image/object/polygon/size"].tolist() == [4, 4]
    _, ex = run(folder, "detection", "--model_type DETECTION --error_class 类别1 --test_ratio 0", overwrite=True)
    assert ex["2"]["image/object/class/text"].tolist() == ["类别2".encode()]


def test_instance_segmentation_writes_a_mask_per_object(folder):
    _, ex = run(folder, "detection", "--model_type INSTANCE_SEGMENTATION --max_image_size 400 --test_ratio 0")
    assert (ex["2"]["image/width"], ex["2"]["image/height"]) == (400, 400)
    first = np.asarray(Image.open(io.BytesIO(ex["2"]["image/object/mask"][0])))
    assert first.shape == (400, 400) and first[10:20, 180:340].all() and not first[100:, :].any()


def test_segmentation_masks_follow_the_resized_image(folder):
    _, ex = run(
        folder, "segmentation", "--model_type SEGMENTATION --max_image_size 400 --image_format png --test_ratio 0"
    )
    ids = np.asarray(Image.open(io.BytesIO(ex["1"]["image/segmentation/class/encoded"])))
    assert ids.shape == (400, 400) and ex["1"]["image/format"] == b"png"
    assert ids[5:30, 10:60].min() == 1 and ids[150:210, 250:350].min() == 2 and ids[100, 100] == 0


def test_text_recognition_with_the_character_dictionary_and_replace_map(folder):
    (folder / "chars.txt").write_text("文\n本\n1\n二\n", encoding="utf-8")
    (folder / "replace.csv").write_text("original,replaced\n2,二\n", encoding="utf-8")
    config = "--model_type TEXT_RECOGNITION --default_char_dict_path chars.txt --char_replace_map_path replace.csv"
    _, ex = run(folder, "text-recognition", config + " --test_ratio 0")
    assert ex["1"]["image/text"].decode() == "文本1" and ex["1"]["image/text/label"].tolist() == [0, 1, 2]
    assert ex["2"]["image/text"].decode() == "文本二" and ex["2"]["image/text/label"].tolist() == [0, 1, 3]


def test_text_detection_keeps_directions_and_orientation(folder):
    _, ex = run(folder, "text-detection", "--model_type TEXT_DETECTION --test_ratio 0")
    assert ex["1"]["image/object/direction"].tolist() == [0, 0] and ex["1"]["image/orientation"] == 0
    assert ex["2"]["image/object/direction"].tolist() == [3] and ex["2"]["image/orientation"] == 3


def test_text_end2end_as_the_manual_types_it(folder):
    (folder / "chars.txt").write_text("文\n本\n3\n4\n", encoding="utf-8")
    config = (
        "--model_type TEXT_END2END --default_class text --max_image_size 2000 --default_char_dict_path chars.txt "
        "--test_ratio 0.1 --write_parallel_num 8 --num_samples_per_tfrecord 64"
    )
    result, ex = run(folder, "text-end2end", config, cluster='{"worker": {"count": 1, "cpu": 800}}')
    assert ex["1"]["image/object/text"].tolist() == ["文本3".encode(), "文本4".encode()]
    assert ex["1"]["image/object/text/label"].tolist() == [0, 1, 2, 0, 1, 3]
    assert ex["1"]["image/object/text/length"].tolist() == [3, 3]
    assert any(n.startswith("write_parallel_num") for n in result.notes)
    assert any(n.startswith("cluster") for n in result.notes)


def test_video_classification_samples_frames(folder):
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(20):  # 2 s at 10 fps
        writer.write(np.full((48, 64, 3), k * 10, dtype=np.uint8))
    writer.release()
    (folder / "video.csv").write_text('1,"{""url"":""clip.avi""}","{""option"":""walk""}"\n', encoding="utf-8")
    _, ex = run(folder, "video", "--model_type VIDEO_CLASSIFICATION --sample_fps 2 --reshape_size 32 --test_ratio 0")
    assert ex["1"]["video/frame_count"] == 4 and ex["1"]["image/class/label"].tolist() == [0]
    assert Image.open(io.BytesIO(ex["1"]["video/frames"][0])).size == (32, 32)


def test_shards_and_split(folder):
    rows = "".join(f'{k},"{{""url"":""a.jpg""}}","{{""option"":""c{k % 3}""}}"\n' for k in range(1, 21))
    (folder / "many.csv").write_text(rows, encoding="utf-8")
    result, ex = run(
        folder, "many", "--model_type CLASSIFICATION --test_ratio 0.3 --num_samples_per_tfrecord 4 --seed 7"
    )
    names = [Path(f).name for f in result.files]
    assert "many_train_00000.tfrecord" in names and "many_test_00000.tfrecord" in names
    assert sorted(ex) == sorted(str(k) for k in range(1, 21)) and result.items == 20
    import tensorflow as tf

    assert max(sum(1 for _ in tf.data.TFRecordDataset(f)) for f in result.files if f.endswith(".tfrecord")) == 4


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ("--model_type FACES", "options.model_type"),
        ("--test_ratio 0.1", "options.model_type"),
        ("--model_type SELF_DEFINED --user_defined_converter_path my.py", "options.model_type"),
        ("--model_type CLASSIFICATION --test_ratio 1.5", "options.test_ratio"),
        ("--model_type CLASSIFICATION --image_format gif", "options.image_format"),
        ("--model_type CLASSIFICATION --colour red", "options.colour"),
        ("--model_type CLASSIFICATION --converter_class Mine", "options.converter_class"),
        ("--model_type DETECTION", "options.model_type"),
        ("--model_type", "convert_param_config"),
    ],
)
def test_bad_options_name_the_option(folder, config, field):
    with pytest.raises(BadInput) as err:
        run(folder, "classification", config)
    assert err.value.field == field, err.value.message
    assert not (folder / "out").exists() or not list((folder / "out").glob("*.tfrecord"))


def test_self_defined_runs_the_users_converter_in_their_own_process(folder):
    import tensorflow as tf

    from pai_lab.client.easyvision import convert_here

    (folder / "mine.py").write_text(
        "class Mine:\n"
        "    def __call__(self, key, url, answer, media):\n"
        "        return {'my/size': len(media), 'my/text': answer['text'], 'my/score': [0.5, 1.5]}\n",
        encoding="utf-8",
    )
    config = "--model_type SELF_DEFINED --user_defined_converter_path mine.py --converter_class Mine --test_ratio 0"
    result = convert_here(folder / "text-recognition.csv", folder / "own" / "data", config)
    spec = {
        "image/key": tf.io.FixedLenFeature([], tf.string),
        "my/size": tf.io.FixedLenFeature([], tf.int64),
        "my/text": tf.io.FixedLenFeature([], tf.string),
        "my/score": tf.io.FixedLenFeature([2], tf.float32),
    }
    shard = [f for f in result.files if f.endswith(".tfrecord")]
    got = {
        ex["image/key"].numpy().decode(): ex
        for ex in tf.data.TFRecordDataset(shard).map(lambda r: tf.io.parse_single_example(r, spec))
    }
    assert got["1"]["my/text"].numpy().decode() == "文本1"
    assert int(got["2"]["my/size"]) == (folder / "a.jpg").stat().st_size
    assert got["1"]["my/score"].numpy().tolist() == [0.5, 1.5]
    shown = result._repr_html_()  # as a notebook shows it
    assert "2 rows" in shown and "data_train_00000.tfrecord" in shown
    with pytest.raises(BadInput) as err:  # the same options through the server's door
        run(folder, "text-recognition", config)
    assert err.value.field == "options.model_type" and "convert_here" in err.value.message


CASES = [
    ("classification", "CLASSIFICATION"),
    ("multi-label", "CLASSIFICATION"),
    ("detection", "DETECTION"),
    ("detection", "INSTANCE_SEGMENTATION"),
    ("segmentation", "SEGMENTATION"),
    ("text-recognition", "TEXT_RECOGNITION"),
    ("text-detection", "TEXT_DETECTION"),
    ("text-end2end", "TEXT_END2END"),
]


@pytest.mark.parametrize(("shape", "model_type"), CASES)
def test_a_task_converts_to_the_same_examples_as_its_csv(label_platform, folder, shape, model_type):
    """The CSV converted, and the task the CSV imports into converted through its export: the same."""
    from pai_lab.labeling import transfer

    path = folder / f"{shape}.csv"
    text = path.read_text(encoding="utf-8")
    for name in ("a.jpg", "b.jpg", "a.png"):
        text = text.replace(f'""{name}""', f'""{folder / name}""')
    path.write_text(text, encoding="utf-8")
    labels = ["background", "cat", "dog"] if shape == "segmentation" else []
    with label_platform.store.transaction() as s:
        task = transfer.import_task(
            s, "owner", "default", sc.ImportRequest(format="easyvision", name=shape, content=text, labels=labels)
        )
    config = f"--model_type {model_type} --test_ratio 0 --max_image_size 500"
    _, from_file = run(folder, shape, config)
    options = {"model_type": model_type, "test_ratio": 0, "max_image_size": 500}
    result = transfer.export_to(
        label_platform.store,
        "owner",
        "default",
        task.id,
        sc.ExportRequest(format="tfrecord", to=str(folder / "task" / shape), options=options),
    )
    import tensorflow as tf

    from_task = {}
    for record in tf.data.TFRecordDataset([f for f in result.files if f.endswith(".tfrecord")]):
        ex = tf.io.parse_single_example(record, features(model_type))
        ex = {k: tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy() for k, v in ex.items()}
        from_task[ex["image/key"].decode()] = ex
    assert sorted(from_task) == sorted(from_file) and from_file
    for key, ex in from_file.items():
        for name, value in ex.items():
            if name == "image/segmentation/class/encoded":
                same = (
                    np.asarray(Image.open(io.BytesIO(value)))
                    == np.asarray(Image.open(io.BytesIO(from_task[key][name])))
                ).all()
                assert same, name
            elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert from_task[key][name] == pytest.approx(value, abs=1e-4), name
            else:
                assert np.array_equal(from_task[key][name], value), name


def test_a_video_classification_task_converts_its_videos(label_platform, tmp_path):
    import tensorflow as tf

    from pai_lab.labeling import service as sv
    from pai_lab.labeling import transfer

    cv2 = pytest.importorskip("cv2")
    lines = []
    for k in range(2):
        path = tmp_path / f"clip{k}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        for f in range(10):  # 1 s at 10 fps
            writer.write(np.full((48, 64, 3), f * 20, dtype=np.uint8))
        writer.release()
        lines.append({"data": {"source": str(path)}})
    with label_platform.store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            "default",
            sc.TaskCreate(name="clips", template="video-classification", labels=["walk", "run"], lines=lines),
        )
        pkg = sv.claim(s, "owner", "default", task.id)
        for k in range(2):
            sv.submit_answer(s, "owner", "default", task.id, sc.AnswerSubmit(item=k, answer=["run", "walk"][k]))
        sv.submit_package(s, "owner", "default", task.id, pkg.number)
    with pytest.raises(BadInput) as err:  # a video task converts as video only
        transfer.export_to(
            label_platform.store,
            "owner",
            "default",
            task.id,
            sc.ExportRequest(format="tfrecord", to=str(tmp_path / "x"), options={"model_type": "CLASSIFICATION"}),
        )
    assert err.value.field == "options.model_type"
    options = {"test_ratio": 0, "sample_fps": 5, "reshape_size": 16, "decode_batch_size": 4}
    result = transfer.export_to(
        label_platform.store,
        "owner",
        "default",
        task.id,
        sc.ExportRequest(format="tfrecord", to=str(tmp_path / "tf" / "clips"), options=options),
    )
    assert [n.split(":")[0] for n in result.notes] == ["decode_batch_size"]
    spec = features("VIDEO_CLASSIFICATION")
    shards = [f for f in result.files if f.endswith(".tfrecord")]
    got = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(shards)]
    assert [tf.sparse.to_dense(e["image/class/label"]).numpy().tolist() for e in got] == [[1], [0]]
    assert [int(e["video/frame_count"]) for e in got] == [5, 5]
    frame = tf.sparse.to_dense(got[0]["video/frames"]).numpy()[0]
    assert Image.open(io.BytesIO(frame)).size == (16, 16)


def test_a_failed_conversion_leaves_no_shards_and_keeps_the_earlier_ones(folder):
    rows = "".join(
        f'{k},"{{""url"":""{n}""}}","{{""option"":""x""}}"\n' for k, n in enumerate(["a.jpg", "a.jpg", "b.jpg"], 1)
    )
    (folder / "three.csv").write_text(rows, encoding="utf-8")
    config = "--model_type CLASSIFICATION --test_ratio 0 --num_samples_per_tfrecord 1"
    before, _ = run(folder, "three", config)
    shards = {Path(f).name: Path(f).read_bytes() for f in before.files if f.endswith(".tfrecord")}
    assert sorted(shards) == [f"three_train_0000{k}.tfrecord" for k in range(3)]
    (folder / "b.jpg").unlink()
    with pytest.raises(BadInput) as err:
        run(folder, "three", config.replace("jpg", "png") + " --image_format png", overwrite=True)
    assert "b.jpg" in err.value.message
    assert {p.name: p.read_bytes() for p in (folder / "out").iterdir() if "three_train" in p.name} == shards


def test_seperator_splits_the_class_names(folder):
    (folder / "joined.csv").write_text('1,"{""url"":""a.jpg""}","{""option"":""cat|dog""}"\n', encoding="utf-8")
    _, ex = run(folder, "joined", "--model_type CLASSIFICATION --seperator | --class_list dog,cat --test_ratio 0")
    assert ex["1"]["image/class/label"].tolist() == [1, 0]

"""pai_lab.whale and AdagradDecay with real TensorFlow, on this machine's CPU.

Data parallel runs each start a fresh Python (a process sets up its strategy once) with two logical
CPUs, so two replicas really run side by side in one process."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tf

# DeepRec's AdagradDecay test, whose losses the manual's rule reproduces: lr 0.1, a period of 2 steps,
# 6 looked-up rows x 3 of ones, loss = sum(2 * rows).
ORACLE = [36.0, 32.444176, 29.847788, 27.74195, 25.852505]

RUN = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
opts = json.loads(sys.argv[1])
if opts.get("legacy", True):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
if opts.get("legacy", True):
    import tf_keras as keras
else:
    import keras
import pai_lab.whale as wh

devices = ["/cpu:0", "/cpu:1"][: opts["replicas"]]
comm = wh.CommOptions(**opts.get("comm", {}))
if opts.get("auto"):
    rep = wh.auto_parallel("replica", devices=devices, num_micro_batch=opts["k"], comm=comm)
else:
    rep = wh.replica(devices=devices, num_micro_batch=opts["k"], comm=comm).__enter__()
keras.utils.set_random_seed(3)
model = keras.Sequential([keras.layers.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
if opts.get("optimizer") == "adagrad_decay":
    from pai_lab.training import optimizers
    flavour = optimizers.LegacyAdagradDecay if opts.get("legacy", True) else optimizers.AdagradDecay
    optimizer = flavour(0.2, accumulator_decay_step=2)
else:
    optimizer = keras.optimizers.SGD(0.2)
if not opts.get("auto"):
    rep.__exit__(None, None, None)
rng = np.random.default_rng(0)
x = rng.normal(size=(96, 6)).astype("float32")
y = np.sin(x @ rng.normal(size=(6, 1))).astype("float32")
data = rep.distribute(tf.data.Dataset.from_tensor_slices((x, y)), 24)
squared = lambda m, b: tf.reduce_mean((m(b[0]) - b[1]) ** 2, axis=1)
step = rep.train_step(model, optimizer, squared, per_micro_batch=True)
losses = [step(batch) for batch in data]
out = {"replicas": rep.num_replicas, "weights": [w.tolist() for w in model.get_weights()]}
for key in wh.GraphKeys.ALL:
    value = rep.reduce(losses[0], key)
    out[key] = [np.asarray(v).tolist() for v in value] if isinstance(value, list) else np.asarray(value).tolist()
print("RESULT=" + json.dumps(out))
"""


def _run(**opts) -> dict:
    return _run_once(json.dumps(opts, sort_keys=True))


@functools.cache  # the runs are deterministic: tests that need the same one share it
def _run_once(opts: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-c", RUN, opts], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT="))
    return json.loads(line[len("RESULT=") :])


def _flat(result: dict) -> np.ndarray:
    return np.concatenate([np.ravel(w) for w in result["weights"]])


def test_micro_batches_and_replicas_train_what_one_big_batch_does():
    one = _run(replicas=1, k=1)
    micro = _run(replicas=1, k=4)
    both = _run(replicas=2, k=2)
    assert (one["replicas"], both["replicas"]) == (1, 2)
    np.testing.assert_allclose(_flat(micro), _flat(one), atol=1e-5)
    np.testing.assert_allclose(_flat(both), _flat(one), atol=1e-5)
    # auto_parallel("replica") is the same data parallel without the with block
    assert np.abs(_flat(one) - _flat(_run(replicas=1, k=1, auto=True))).max() == 0


def test_metrics_aggregate_over_replicas_and_micro_batches_as_graphkeys_say():
    out = _run(replicas=2, k=2)
    local_concat = np.array(out["local_concat_objects"])  # this process's 2 replicas x 2 micro-batch losses
    assert local_concat.shape == (2, 2)
    np.testing.assert_allclose(out["local_mean_objects"], local_concat.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(out["local_sum_objects"], local_concat.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(out["global_mean_objects"], local_concat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out["global_sum_objects"], local_concat.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out["global_concat_objects"], local_concat.ravel(), rtol=1e-6)


def test_fp16_gradient_exchange_and_keras3_optimizers_train_the_same_model():
    exact = _flat(_run(replicas=2, k=1))
    halved = _flat(_run(replicas=2, k=1, comm={"dense_fp16": True, "fp16_scale": 128.0}))
    assert 0 < np.abs(halved - exact).max() < 2e-3  # float16 rounding, nothing more
    keras3 = _flat(_run(replicas=2, k=2, legacy=False))
    np.testing.assert_allclose(keras3, exact, atol=1e-5)


@pytest.mark.parametrize("legacy", [True, False], ids=["tf_keras", "keras3"])
def test_adagrad_decay_trains_the_same_weights_on_two_replicas_as_on_one(legacy):
    one = _flat(_run(replicas=1, k=1, legacy=legacy, optimizer="adagrad_decay"))
    two = _flat(_run(replicas=2, k=2, legacy=legacy, optimizer="adagrad_decay"))
    np.testing.assert_allclose(two, one, atol=1e-5)
    sgd = _flat(_run(replicas=1, k=1, legacy=legacy))
    assert np.abs(sgd - one).max() > 1e-3  # the optimizer was AdagradDecay, not the default


def _oracle_losses(optimizer, variable, read) -> list[float]:
    import tensorflow as tf

    losses = []
    for _ in ORACLE:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(2.0 * read(variable))
        losses.append(float(loss))
        optimizer.apply_gradients(zip(tape.gradient(loss, [variable]), [variable]))
    return losses


def test_adagrad_decay_matches_the_oracle_in_keras3():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from pai_lab.training.optimizers import AdagradDecay

    variable = keras.Variable(tf.ones([6, 3]))
    optimizer = AdagradDecay(learning_rate=0.1, accumulator_decay_step=2)
    assert _oracle_losses(optimizer, variable, tf.convert_to_tensor) == pytest.approx(ORACLE, abs=1e-4)
    assert optimizer.get_config()["accumulator_decay_step"] == 2


def test_adagrad_decay_matches_the_oracle_in_tf_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pai_lab.training.optimizers import LegacyAdagradDecay

    variable = tf.Variable(tf.ones([6, 3]))
    optimizer = LegacyAdagradDecay(learning_rate=0.1, accumulator_decay_step=2)
    assert _oracle_losses(optimizer, variable, tf.convert_to_tensor) == pytest.approx(ORACLE, abs=1e-4)


@pytest.mark.parametrize("flavour", ["AdagradDecay", "LegacyAdagradDecay"])
def test_adagrad_decay_never_lets_the_accumulator_fall_below_its_start(flavour):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pai_lab.training import optimizers

    # one big gradient, quiet steps that halve the accumulator every step, then a unit gradient
    grads = [3.0] + [0.0] * 8 + [1.0]
    optimizer = getattr(optimizers, flavour)(learning_rate=1.0, accumulator_decay_step=1, accumulator_decay_rate=0.5)
    if flavour == "AdagradDecay":
        import keras

        variable = keras.Variable(tf.zeros([1]))
    else:
        variable = tf.Variable(tf.zeros([1]))
    for g in grads:
        optimizer.apply_gradients([(tf.constant([g]), variable)])
    # by hand: the first step floors 0.1 * 0.5 at 0.1 and adds 9; nine halvings would take 9.1 to 0.018, but
    # the floor holds it at 0.1 before the last gradient is added (without the floor: 1 / sqrt(1.018))
    expected = -3.0 / np.sqrt(9.1) - 1.0 / np.sqrt(1.1)
    assert float(np.asarray(variable)[0]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="accumulator_decay_rate: between 0 and 1"):
        getattr(optimizers, flavour)(accumulator_decay_rate=1.0)
    with pytest.raises(ValueError, match="initial_accumulator_value: must be positive"):
        getattr(optimizers, flavour)(initial_accumulator_value=0)


@pytest.mark.parametrize("flavour", ["AdagradDecay", "LegacyAdagradDecay"])
def test_adagrad_decay_trains_in_model_fit_and_loads_back_with_its_settings(flavour, tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pai_lab.training import optimizers

    if flavour == "AdagradDecay":
        import keras
    else:
        import tf_keras as keras
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=getattr(optimizers, flavour)(learning_rate=0.5, accumulator_decay_step=5), loss="mse")
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < history[0] / 10
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras").optimizer
    assert type(loaded).__name__ == flavour
    assert (loaded.accumulator_decay_step, loaded.accumulator_decay_rate) == (5, 0.9)

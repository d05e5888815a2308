"""A small TF2 ParameterServerStrategy job: one ps, one chief that coordinates, workers that run steps.

Submit with a chief, parameter servers and workers, e.g.::

    pai dlc submit tfjob --name=ps --chief=true --ps=1 --workers=2 --enableDynamicCluster=true \
        --code_source=examples/training --command="python ps_strategy_train.py --rounds=10"

The chief (the coordinator) schedules ``--rounds`` rounds of ``--steps_per_round`` tiny steps of linear
regression (plain ``tf.Variable`` math, no Keras) with ``ClusterCoordinator``, reports each round and
saves a checkpoint under ``--checkpointDir``. A worker that dies mid-job costs the coordinator only the
steps it held: they run again on another worker, and once the worker is back (enableDynamicCluster) it
takes steps again. Workers and parameter servers serve until they are ended (a TF2 worker has no end
of its own): a job with a chief succeeds when its chief exits 0, and the platform then ends the others.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the process id first, before the TensorFlow import (seconds on a busy machine): a worker that rejoins
# shows it has started even when the chief finishes before the worker serves
print(f"pid={os.getpid()}", flush=True)

import tensorflow as tf  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--checkpointDir", default="")
parser.add_argument("--rounds", type=int, default=10)
parser.add_argument("--steps_per_round", type=int, default=30)
parser.add_argument("--pause", type=float, default=0.3, help="seconds between rounds")
args, _ = parser.parse_known_args()

resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
print(f"role={resolver.task_type}:{resolver.task_id}", flush=True)

if resolver.task_type in ("worker", "ps"):
    server = tf.distribute.Server(
        resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id, protocol="grpc"
    )
    print("serving", flush=True)
    server.join()  # serves until the platform ends it, once the chief is done

import pai_lab.training as pai  # noqa: E402

strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
with strategy.scope():
    weight = tf.Variable(0.0)
    bias = tf.Variable(0.0)
    steps = tf.Variable(0, dtype=tf.int64)


@tf.function
def train_step():
    def step():
        x = tf.random.uniform([64])
        y = 3.0 * x + 1.0
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((weight * x + bias - y) ** 2)
        grad_w, grad_b = tape.gradient(loss, [weight, bias])
        weight.assign_sub(0.2 * grad_w)
        bias.assign_sub(0.2 * grad_b)
        steps.assign_add(1)
        return loss

    return strategy.run(step)


checkpoint = tf.train.Checkpoint(weight=weight, bias=bias, steps=steps)
loss = None
for round_ in range(1, args.rounds + 1):
    results = [coordinator.schedule(train_step) for _ in range(args.steps_per_round)]
    coordinator.join()  # a step a lost worker held runs again on another
    loss = float(results[-1].fetch())
    pai.report(step=int(steps.numpy()), loss=loss)
    print(f"round {round_}: steps={int(steps.numpy())} loss={loss:.4f}", flush=True)
    if args.checkpointDir:
        checkpoint.save(os.path.join(args.checkpointDir, "ckpt"))
    time.sleep(args.pause)
print(f"trained: steps={int(steps.numpy())} weight={float(weight.numpy()):.3f} bias={float(bias.numpy()):.3f}")
sys.stdout.flush()
# Done: end the process now. At exit TensorFlow stops the coordinator's preemption handler under a lock that
# the handler holds while it reconnects to a worker it saw leave (a blocking call), so a chief whose worker
# left and rejoined can hang after its work is done, and the job would never see its chief end.
os._exit(0)

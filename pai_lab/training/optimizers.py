"""PAI-TF's AdagradDecay for Keras 3 and for tf_keras (legacy Keras, the one MultiWorkerMirroredStrategy
trains with in ``model.fit``).

    from pai_lab.training.optimizers import AdagradDecay          # Keras 3
    from pai_lab.training.optimizers import LegacyAdagradDecay    # tf_keras (TF_USE_LEGACY_KERAS=1)

Adagrad whose accumulators decay: at the first step of each period of ``accumulator_decay_step`` steps,
every accumulator is multiplied by ``accumulator_decay_rate`` but never below
``initial_accumulator_value`` (its start and floor), so that months of incremental training keep
learning from new data. With ``gs`` the step being taken, counted from 1::

    if gs // decay_step > decay_power:      # at most one decay per step
        decay_power += 1
        accum = max(accum * decay_rate, initial_accumulator_value)
    accum += g ** 2
    var -= lr * g / sqrt(accum)

Sparse gradients are applied as dense ones: an embedding row's accumulator decays with the period
even in steps that did not look it up (PAI-TF's sparse kernel keeps a period count per row instead).
The classes are made on first use, so importing this module loads neither Keras; each is registered
with its Keras (as ``pai_lab>AdagradDecay`` / ``pai_lab>LegacyAdagradDecay``), so a saved model that
uses one loads again once the class has been used or imported.
"""

from __future__ import annotations

from typing import Any

DEFAULTS = {"initial_accumulator_value": 0.1, "accumulator_decay_step": 100_000, "accumulator_decay_rate": 0.9}
_made: dict[str, Any] = {}


def check(initial_accumulator_value: float, accumulator_decay_step: int, accumulator_decay_rate: float) -> None:
    """PAI-TF's checks: a positive start and floor, a positive period, a rate in (0, 1)."""
    if not initial_accumulator_value > 0:
        raise ValueError(f"initial_accumulator_value: must be positive, got {initial_accumulator_value!r}")
    if isinstance(accumulator_decay_step, bool) or not isinstance(accumulator_decay_step, int):
        raise ValueError(f"accumulator_decay_step: a whole number of steps, got {accumulator_decay_step!r}")
    if accumulator_decay_step <= 0:
        raise ValueError(f"accumulator_decay_step: must be positive, got {accumulator_decay_step!r}")
    if not 0 < accumulator_decay_rate < 1:
        raise ValueError(f"accumulator_decay_rate: between 0 and 1 (exclusive), got {accumulator_decay_rate!r}")


def _keras3():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="pai_lab")
    class AdagradDecay(keras.optimizers.Optimizer):
        """AdagradDecay (see the module) as a Keras 3 optimizer."""

        def __init__(
            self,
            learning_rate=0.001,
            initial_accumulator_value=DEFAULTS["initial_accumulator_value"],
            accumulator_decay_step=DEFAULTS["accumulator_decay_step"],
            accumulator_decay_rate=DEFAULTS["accumulator_decay_rate"],
            name="AdagradDecay",
            **kwargs,
        ):
            check(initial_accumulator_value, accumulator_decay_step, accumulator_decay_rate)
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.initial_accumulator_value = float(initial_accumulator_value)
            self.accumulator_decay_step = int(accumulator_decay_step)
            self.accumulator_decay_rate = float(accumulator_decay_rate)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            start = keras.initializers.Constant(self.initial_accumulator_value)
            self._accumulators = self.add_optimizer_variables(var_list, "accumulator", initializer=start)
            self._decay_powers = [
                self.add_variable(
                    shape=(), dtype="int64", initializer="zeros", aggregation="only_first_replica", name="decay_power"
                )
                for _ in var_list
            ]

        def update_step(self, gradient, variable, learning_rate):
            index = self._get_variable_index(variable)
            accumulator, power = self._accumulators[index], self._decay_powers[index]
            gradient = ops.cast(ops.convert_to_tensor(gradient), variable.dtype)
            lr = ops.cast(learning_rate, variable.dtype)
            step = ops.cast(self.iterations, "int64") + 1
            due = ops.greater(ops.floor_divide(step, self.accumulator_decay_step), power)
            floor = ops.cast(self.initial_accumulator_value, variable.dtype)
            decayed = ops.maximum(accumulator * ops.cast(self.accumulator_decay_rate, variable.dtype), floor)
            new_accumulator = ops.where(due, decayed, accumulator) + ops.square(gradient)
            self.assign(power, ops.where(due, power + 1, power))
            self.assign(accumulator, new_accumulator)
            self.assign_sub(variable, lr * gradient / ops.sqrt(new_accumulator))

        def get_config(self):
            config = super().get_config()
            config.update(
                initial_accumulator_value=self.initial_accumulator_value,
                accumulator_decay_step=self.accumulator_decay_step,
                accumulator_decay_rate=self.accumulator_decay_rate,
            )
            return config

    return AdagradDecay


def _tf_keras():
    import tensorflow as tf
    import tf_keras

    @tf_keras.saving.register_keras_serializable(package="pai_lab")
    class LegacyAdagradDecay(tf_keras.optimizers.Optimizer):
        """AdagradDecay (see the module) as a tf_keras optimizer."""

        def __init__(
            self,
            learning_rate=0.001,
            initial_accumulator_value=DEFAULTS["initial_accumulator_value"],
            accumulator_decay_step=DEFAULTS["accumulator_decay_step"],
            accumulator_decay_rate=DEFAULTS["accumulator_decay_rate"],
            name="AdagradDecay",
            **kwargs,
        ):
            check(initial_accumulator_value, accumulator_decay_step, accumulator_decay_rate)
            super().__init__(name=name, **kwargs)
            self._learning_rate = self._build_learning_rate(learning_rate)
            self.initial_accumulator_value = float(initial_accumulator_value)
            self.accumulator_decay_step = int(accumulator_decay_step)
            self.accumulator_decay_rate = float(accumulator_decay_rate)

        def build(self, var_list):
            super().build(var_list)
            if getattr(self, "_built", False):
                return
            self._built = True
            self._accumulators, self._decay_powers = [], []
            for var in var_list:
                start = tf.fill(var.shape, tf.cast(self.initial_accumulator_value, var.dtype))
                self._accumulators.append(self.add_variable_from_reference(var, "accumulator", initial_value=start))
                # a count of periods, kept in the variable's float type (exact up to 2**24 periods)
                self._decay_powers.append(
                    self.add_variable_from_reference(
                        var, "decay_power", shape=[], initial_value=tf.zeros([], var.dtype)
                    )
                )

        def update_step(self, gradient, variable):
            index = self._index_dict[self._var_key(variable)]
            accumulator, power = self._accumulators[index], self._decay_powers[index]
            gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
            lr = tf.cast(self.learning_rate, variable.dtype)
            periods = tf.cast((tf.cast(self.iterations, tf.int64) + 1) // self.accumulator_decay_step, variable.dtype)
            due = periods > power
            decayed = tf.maximum(accumulator * self.accumulator_decay_rate, self.initial_accumulator_value)
            new_accumulator = tf.where(due, decayed, accumulator) + tf.square(gradient)
            power.assign(tf.where(due, power + 1, power))
            accumulator.assign(new_accumulator)
            variable.assign_sub(lr * gradient / tf.sqrt(new_accumulator))

        def get_config(self):
            config = super().get_config()
            config.update(
                learning_rate=self._serialize_hyperparameter(self._learning_rate),
                initial_accumulator_value=self.initial_accumulator_value,
                accumulator_decay_step=self.accumulator_decay_step,
                accumulator_decay_rate=self.accumulator_decay_rate,
            )
            return config

    return LegacyAdagradDecay


def __getattr__(name: str) -> Any:
    makers = {"AdagradDecay": _keras3, "LegacyAdagradDecay": _tf_keras}
    if name not in makers:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _made:
        _made[name] = makers[name]()
    return _made[name]

"""Learning-rate schedules of the training recipes.

* ``"constant"``: the learning rate itself (Magenta's, Johnson's).
* ``"ulyanov"``: :class:`UlyanovSchedule`, Texture Networks' ×0.7 per 200-step epoch after 4.
* :func:`inverse_time_decay`: pytorch-AdaIN's ``lr / (1 + decay·step)``.

Example:
    >>> round(float(learning_rate_schedule("ulyanov", 0.1)(1000)), 4)
    0.049
"""

import keras
import tensorflow as tf

from nst_tf.errors import ConfigError

#: Names accepted by :func:`learning_rate_schedule`.
SCHEDULES = ("constant", "ulyanov")


@keras.saving.register_keras_serializable(package="nst_tf")
class UlyanovSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``initial · decay^max(0, epoch − delay + 1)`` with ``epoch = step // epoch_steps``:
    constant for ``delay`` epochs, then ×``decay`` at the start of every later epoch (the paper:
    0.1, ×0.7, 200-step epochs, a 4-epoch delay).

    Example:
        >>> schedule = UlyanovSchedule(0.1)
        >>> [round(float(schedule(s)), 4) for s in (0, 799, 800, 1000, 1999)]
        [0.1, 0.1, 0.07, 0.049, 0.0118]
    """

    def __init__(self, initial, decay=0.7, epoch_steps=200, delay=4):
        self.initial, self.decay = float(initial), float(decay)
        self.epoch_steps, self.delay = int(epoch_steps), int(delay)

    def __call__(self, step):
        epoch = tf.cast(step, tf.float32) // float(self.epoch_steps)
        power = tf.maximum(0.0, epoch - float(self.delay) + 1.0)
        return self.initial * tf.pow(self.decay, power)

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay, "epoch_steps": self.epoch_steps,
                "delay": self.delay}


def learning_rate_schedule(kind, learning_rate):
    """``"constant"`` (the float) or ``"ulyanov"`` (:class:`UlyanovSchedule`)."""
    if kind == "constant":
        return learning_rate
    if kind == "ulyanov":
        return UlyanovSchedule(learning_rate)
    raise ConfigError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")


def inverse_time_decay(initial, decay):
    """pytorch-AdaIN's schedule ``initial / (1 + decay·step)``.

    Example:
        >>> round(float(inverse_time_decay(1e-4, 5e-5)(20000)), 10)
        5e-05
    """
    return keras.optimizers.schedules.InverseTimeDecay(initial, decay_steps=1, decay_rate=decay)

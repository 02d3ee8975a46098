"""Keras callbacks of a training run: checkpoints, throughput, TensorBoard summaries.

* :class:`CheckpointCallback`: ``tf.train.CheckpointManager`` of the step, the network, the
  optimizer (and the network's random-generator states); saves every N steps, on Ctrl-C and at
  the end; :meth:`~CheckpointCallback.restore` resumes. :func:`restore_network` reads the
  network back from a train_dir (what :func:`nst_tf.stylize` does with one).
* :class:`ThroughputCallback`: images per second in the progress bar and the logs;
  :class:`ProgressCallback`: the progress bar, which ends at the step reached when stopped.
* :class:`SummaryCallback`: every loss term, the learning rate and a grid of stylized validation
  images, written with :func:`write_scalar` / :func:`write_image` (no tensorboard package needed).

Example:
    >>> saver = CheckpointCallback("runs/cin", trainer, save_every=1000)   # doctest: +SKIP
    >>> step = saver.restore()                                           # doctest: +SKIP
"""

import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from nst_tf.errors import CheckpointError


class CheckpointCallback(keras.callbacks.Callback):
    """Save step, network and optimizer state with ``tf.train.CheckpointManager``.

    Saves every ``save_every`` steps, at the end of training and when SIGINT (Ctrl-C) arrives
    during ``fit``: the first Ctrl-C asks the trainer to stop after the current step and saves; a
    second one interrupts at once. ``restore()`` (call it before ``fit``) loads the latest
    checkpoint and returns its step.

    Several workers: build it in ``strategy.scope()`` on every worker, with ``write=True`` on the
    chief only. Every worker restores; only the chief saves. Saving reads mirrored variables,
    which needs no collective, so the others go on to the next step (and wait there for the
    chief). ``handle_sigint=False`` there: one worker cannot stop alone.

    Nothing is half-written: TensorFlow writes each checkpoint's data and index files under
    temporary names and renames them into place, and updates the ``checkpoint`` state file (the
    pointer to the latest one) atomically afterwards, so an interrupted save leaves the previous
    checkpoint as the latest.
    """

    def __init__(self, directory, trainer, save_every=1000, max_to_keep=3, handle_sigint=True,
                 write=True):
        super().__init__()
        self.directory = os.fspath(directory)
        self.save_every = int(save_every) if save_every else 0
        self.handle_sigint = handle_sigint
        self.write = bool(write)
        self.interrupted = False
        self._previous_handler = None
        if not trainer.optimizer.built:
            trainer.optimizer.build(trainer.network.trainable_variables)
        # Random-generator states (texture networks' noise) are not Keras weights: save them too,
        # so a resumed run draws the same noise as an uninterrupted one.
        rng = [v for v in trainer.network.variables if "seed_generator_state" in v.path]
        self.checkpoint = tf.train.Checkpoint(network=trainer.network, optimizer=trainer.optimizer,
                                              **({"rng": rng} if rng else {}))
        # Created now, on every worker (a variable made in a multi-worker scope is a collective).
        self.checkpoint.save_counter  # noqa: B018
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep, checkpoint_name="ckpt")
        self._trainer = trainer
        self._last_saved = None

    @property
    def step(self):
        """Optimizer steps taken (the checkpoint's step)."""
        return int(self._trainer.optimizer.iterations.numpy())

    def restore(self):
        """Restore the latest checkpoint in the directory, if any; return the step (0 if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise CheckpointError(f"cannot resume from {latest}: it does not fit this network / "
                                  f"optimizer ({str(exc).splitlines()[0]})") from None
        self._last_saved = self.step
        return self.step

    def save(self):
        """Save now (unless this step is already saved, or this worker does not ``write``);
        returns the checkpoint path or None."""
        step = self.step
        if step == self._last_saved or not self.write:
            return None
        path = self.manager.save(checkpoint_number=step)
        self._last_saved = step
        return path

    def _on_sigint(self, signum, frame):
        self.interrupted = True
        self.model.stop_training = True
        print(f"\nInterrupted: saving a checkpoint in {self.directory} after this step "
              "(Ctrl-C again to quit without saving)", flush=True)
        signal.signal(signal.SIGINT, self._previous_handler or signal.default_int_handler)

    def on_train_begin(self, logs=None):
        if self.handle_sigint and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_every and self.step % self.save_every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


class ProgressCallback(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, except that a run stopped early (Ctrl-C) ends its bar at the step it
    reached (``57/200``): Keras' own draws the last update at the target (``200/200``)."""

    def _finalize_progbar(self, logs):
        if self.progbar is None or self.target is None or self.seen >= self.target:
            super()._finalize_progbar(logs)
            return
        self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)


class ThroughputCallback(keras.callbacks.Callback):
    """Adds ``images_per_sec`` (global batch / wall time, the first step excluded because it
    compiles) to the logs, so the progress bar and TensorBoard show it."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = int(batch_size)
        self._start = None
        self._steps = 0
        self.images_per_sec = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._start is None:
            self._start, self._steps = now, 0
            return
        self._steps += 1
        self.images_per_sec = self._steps * self.batch_size / max(now - self._start, 1e-9)
        if logs is not None:
            logs["images_per_sec"] = self.images_per_sec

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.images_per_sec is not None:
            logs["images_per_sec"] = self.images_per_sec


def _plugin_metadata(plugin):
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata.SerializeToString()


def write_scalar(tag, value, step):
    """Write a TensorBoard scalar with the default summary writer (TensorBoard's "scalars"
    plugin layout: a float32 scalar tensor); works without the tensorboard package installed."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=_plugin_metadata("scalars"))


def write_image(tag, image, step):
    """Write one float image ``[H, W, 3]`` in [0, 1] as a TensorBoard image (the "images" plugin
    layout: a string tensor ``[width, height, PNG bytes]``)."""
    image = tf.convert_to_tensor(image, tf.float32)
    png = tf.image.encode_png(tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255), tf.uint8))
    shape = tf.shape(image)
    tensor = tf.stack([tf.as_string(shape[1]), tf.as_string(shape[0]), png])
    tf.summary.write(tag, tensor, step=step, metadata=_plugin_metadata("images"))


class SummaryCallback(keras.callbacks.Callback):
    """TensorBoard summaries every ``every`` steps: each loss term, ``images_per_sec``, the
    learning rate, and (every ``image_every`` steps and at the end) a grid of stylized validation
    images, one row per validation image and one column per style (at most ``max_styles``)."""

    def __init__(self, log_dir, trainer, validation_images=None, every=100, image_every=None,
                 max_styles=8):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.fspath(log_dir))
        self.trainer = trainer
        self.every = max(1, int(every))
        self.image_every = int(image_every or 10 * self.every)
        self.validation = (None if validation_images is None
                           else tf.convert_to_tensor(np.asarray(validation_images, np.float32)))
        self.styles = list(range(min(trainer.perceptual_loss.num_styles, max_styles)))

    def stylized_grid(self):
        """float32 ``[1, V*H, S*W, 3]``: validation image ``v`` in style ``s`` at row v, column s."""
        images = self.validation
        columns = []
        for style in self.styles:
            labels = tf.fill([tf.shape(images)[0]], style)
            out = self.trainer((images, labels), training=False)
            out = tf.cast(out[:, :images.shape[1], :images.shape[2], :], tf.float32)
            columns.append(tf.concat(tf.unstack(out), axis=0))        # [V*H, W, 3]
        return tf.concat(columns, axis=1)[None]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.optimizer.iterations.numpy())
        if step % self.every and step % self.image_every:
            return
        with self.writer.as_default(step=step):
            if step % self.every == 0:
                for name, value in (logs or {}).items():
                    write_scalar(f"loss/{name}" if name in ("loss", "content", "style", "tv",
                                                                   "diversity")
                                 else name, float(value), step)
                lr = self.trainer.optimizer.learning_rate
                write_scalar("learning_rate", float(keras.ops.convert_to_numpy(lr)), step)
            if self.validation is not None and step % self.image_every == 0:
                write_image("stylized", self.stylized_grid()[0], step)
        self.writer.flush()

    def on_train_end(self, logs=None):
        step = int(self.trainer.optimizer.iterations.numpy())
        if self.validation is not None and step % self.image_every:   # always end with a grid
            with self.writer.as_default(step=step):
                write_image("stylized", self.stylized_grid()[0], step)
        self.writer.flush()


def latest_checkpoint_step(train_dir):
    """The step of the latest checkpoint in ``train_dir`` (0 when there is none).

    Example:
        >>> latest_checkpoint_step("no/such/dir")
        0
    """
    latest = tf.train.latest_checkpoint(os.fspath(train_dir))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def restore_network(train_dir, network):
    """Load the network weights of the latest checkpoint in ``train_dir`` (written by a
    :class:`CheckpointCallback`) into ``network``; returns the checkpoint path.

    Raises:
        CheckpointError: no checkpoint yet, or one that does not fit ``network``.
    """
    latest = tf.train.latest_checkpoint(os.fspath(train_dir))
    if latest is None:
        raise CheckpointError(f"{train_dir} is a train_dir without checkpoints yet")
    try:
        tf.train.Checkpoint(network=network).restore(latest).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"cannot load {latest}: {str(e).splitlines()[0]}") from None
    return latest

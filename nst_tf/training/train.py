"""The training driver: :func:`train` runs any :class:`~nst_tf.training.Recipe`, resuming.

Example:
    >>> from nst_tf.training import train
    >>> net = train("photos/*.jpg", ["starry.jpg", "scream.jpg"], "runs/cin", mode="cin",
    ...             train_steps=40000)                                         # doctest: +SKIP
"""

import json
import math
import os

import keras
import numpy as np

from nst_tf.errors import ConfigError
from nst_tf.io import atomic_write
from nst_tf.training.callbacks import (CheckpointCallback, ProgressCallback, SummaryCallback,
                                       ThroughputCallback, latest_checkpoint_step)
from nst_tf.training.distribute import (STARTUP_TIMEOUT, agree, check_strategy,
                                        distribute_input, make_strategy, reporting_lost_workers,
                                        worker_info)
from nst_tf.training.recipe import recipe_class
from nst_tf.training.train_dir import CONFIG_FILE, read_run_config


def _style_sources(style_images):
    """The style sources as recorded in the config: a list of paths / patterns (a
    comma-separated string is split, as the command line gives it)."""
    from nst_tf.images import split_sources

    if isinstance(style_images, (list, tuple, np.ndarray)):
        return [part for s in np.atleast_1d(style_images) for part in split_sources(str(s))]
    return split_sources(str(style_images))


def _write_or_check_config(train_dir, config, write=True):
    """Record the run's setup in train_dir (unless not ``write``: a worker that is not the
    chief); a resumed run must have the same ``config`` (architecture and style images)."""
    saved = read_run_config(train_dir)
    if saved is not None:
        if "style_images" in saved:  # compared as sources, however they were written
            saved = dict(saved, style_images=_style_sources(saved["style_images"]))
        diff = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        if diff:
            raise ConfigError(f"{train_dir} holds a run with a different setup "
                              + ", ".join(f"{k}: saved {a!r} vs now {b!r}"
                                          for k, (a, b) in diff.items())
                              + "; use another --train_dir")
    if not write:
        return
    with atomic_write(os.path.join(train_dir, CONFIG_FILE), mode="w") as f:
        json.dump(config, f, indent=1)


def _check_common(batch_size, image_size, train_steps, learning_rate):
    for name, value, low in (("batch_size", batch_size, 1), ("image_size", image_size, 16),
                             ("train_steps", train_steps, 0)):
        if int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")


def train(content_images, style_images, train_dir, *, mode="cin", batch_size=16, image_size=256,
          learning_rate=None, train_steps=None, strategy="default", collective_timeout=None,
          startup_timeout=STARTUP_TIMEOUT, jit_compile="auto", seed=0, save_every=1000,
          log_dir=None, summary_every=100, verbose=1, callbacks=(), **options):
    """Train a style network from content images and style images; resumes from ``train_dir``.

    Args:
        content_images: glob pattern(s), folder(s) or TFRecords (:func:`nst_tf.data.content_dataset`);
            None for a mode that trains from noise (``"texture"``).
        style_images: style image paths / patterns; label ``i`` is the ``i``-th (sorted) image
            for the modes with fixed styles, a second shuffled image stream for ``"adain"`` and
            ``"arbitrary"``.
        train_dir: checkpoints (``ckpt-<step>``) and ``train_config.json``; an existing run there
            is resumed (same step, weights, optimizer state and data position). With several
            workers it must be on storage every worker reads (NFS, GCS, ...); only the chief
            writes there.
        mode: a registered mode (:func:`nst_tf.training.recipe.modes`): ``"johnson"``, ``"cin"``,
            ``"finetune"`` (:mod:`nst_tf.models.johnson.recipe`,
            :mod:`nst_tf.models.pastiche.recipe`), ``"adain"`` (:mod:`nst_tf.models.adain.recipe`),
            ``"texture"``, ``"texture_stylize"`` (:mod:`nst_tf.models.texture.recipe`) or
            ``"arbitrary"`` (:mod:`nst_tf.models.arbitrary.recipe`).
        batch_size: global batch size (split over the strategy's replicas, so a multiple of
            their number).
        image_size: side of the square training crops.
        learning_rate, train_steps: None takes the mode's default
            (:func:`nst_tf.training.mode_defaults`).
        strategy: ``"default"``, ``"mirrored"``, ``"one_device"``, ``"multi_worker"`` (the
            cluster of ``TF_CONFIG``; run the same call on every worker) or a
            ``tf.distribute.Strategy`` (:func:`nst_tf.training.distribute.make_strategy`). A
            named strategy is created before anything else; ``"multi_worker"`` needs that to
            be before any TensorFlow op of the process.
        collective_timeout: ``"multi_worker"``: seconds after which a step waiting for a stuck
            worker fails (None: only dead workers are detected, within about 10 s).
        startup_timeout: ``"multi_worker"``: seconds to wait for every worker to start (None:
            for ever); the wait says for whom it waits and stops on Ctrl-C or SIGTERM.
        jit_compile: ``"auto"`` (XLA on GPU/TPU), True or False.
        seed: seeds the network initialization (``keras.utils.set_random_seed``, which also
            seeds Python's and NumPy's generators), the file order, the crops and the labels.
        save_every: checkpoint every this many steps (and at the end, and on Ctrl-C).
        log_dir: TensorBoard folder (default ``<train_dir>/logs``; ``""`` disables summaries).
        summary_every: TensorBoard scalars every this many steps (images every 10x).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: more Keras callbacks.
        **options: the mode's own options, documented by its recipe class (its ``options``
            attribute lists them with their defaults); an option the mode does not take is a
            ConfigError naming the modes that take it.

    Returns:
        The trained network (labels input for ``cin`` / ``finetune``), with attributes
        ``train_history`` (Keras history dict), ``skipped_images`` (unreadable content files
        read by this process), ``final_step``, ``interrupted`` (stopped by Ctrl-C), ``written``
        (the files the mode wrote at the end) and ``worker``
        (:class:`~nst_tf.training.distribute.WorkerInfo`: only the chief writes checkpoints,
        summaries and final files).

    Raises:
        ConfigError: an option of another mode, or a bad value.
        DatasetError: no usable content or style images.
        ImageError: an unusable style or validation image.
        CheckpointError: a checkpoint (``--checkpoint``, the train_dir's) that does not fit.
        WeightsUnavailableError: loss-network or initial weights not cached and offline.
        WorkerLostError: a worker of a multi-worker run died or hung.
    """
    recipe_type = recipe_class(mode)
    learning_rate = recipe_type.defaults["learning_rate"] if learning_rate is None \
        else learning_rate
    train_steps = recipe_type.defaults["train_steps"] if train_steps is None else train_steps
    check_strategy(strategy)
    _check_common(batch_size, image_size, train_steps, learning_rate)
    if collective_timeout is not None and not isinstance(strategy, str):
        raise ConfigError("collective_timeout goes with strategy='multi_worker'; a strategy "
                          "object has its own (make_strategy(..., collective_timeout=...))")
    # Before any TensorFlow op.
    strategy = make_strategy(strategy, collective_timeout, startup_timeout)
    worker = worker_info(strategy)
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size={batch_size} is the global batch: it must be a multiple "
                          f"of the {strategy.num_replicas_in_sync} replicas")
    if verbose and worker.num_workers > 1:
        print(f"{worker.name} of {worker.num_workers} workers ({worker.address})"
              + (", chief" if worker.is_chief else "") + f": {strategy.num_replicas_in_sync} "
              f"replicas, {batch_size // strategy.num_replicas_in_sync} images each per step")
    recipe = recipe_type(content_images, style_images, batch_size=batch_size,
                         image_size=image_size, seed=seed, **options)

    if worker.is_chief:
        os.makedirs(train_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        trainer = recipe.build()
        _write_or_check_config(train_dir, {**recipe.config(),
                                           "style_images": _style_sources(style_images)},
                               write=worker.is_chief)
        trainer.compile(learning_rate=recipe.learning_rate(learning_rate),
                        jit_compile=jit_compile)
        saver = CheckpointCallback(train_dir, trainer, save_every=save_every,
                                   write=worker.is_chief, handle_sigint=worker.num_workers == 1)
        step = agree(strategy, saver.restore(), f"the step of the last checkpoint in "
                     f"{train_dir} (it must be on storage every worker reads)")

    network = trainer.network
    network.train_history, network.skipped_images, network.final_step = {}, 0, step
    network.interrupted, network.written, network.worker = False, [], worker
    remaining = int(train_steps) - step
    if remaining <= 0:
        if verbose:
            print(f"{train_dir} is already at step {step} >= train_steps={train_steps}")
        return network
    dataset, counter = distribute_input(
        strategy, lambda batch_slice: recipe.dataset(step, batch_slice), batch_size)
    all_callbacks = [saver, ThroughputCallback(batch_size)]
    if verbose:
        all_callbacks.append(ProgressCallback())
    log_dir = os.path.join(train_dir, "logs") if log_dir is None else log_dir
    if log_dir and worker.is_chief:
        all_callbacks.append(SummaryCallback(log_dir, trainer, recipe.validation_images(),
                                             every=summary_every))
    all_callbacks.extend(callbacks)
    if verbose and step:
        print(f"Resuming {train_dir} from step {step}")
    with reporting_lost_workers(strategy, lambda: latest_checkpoint_step(train_dir)):
        history = trainer.fit(dataset, epochs=1, steps_per_epoch=remaining,
                              callbacks=all_callbacks, shuffle=False, verbose=verbose)
    network.train_history = history.history
    network.skipped_images = counter.skipped
    network.final_step = saver.step
    network.interrupted = saver.interrupted
    if not saver.interrupted and worker.is_chief:
        network.written = recipe.finish(train_dir)
    if verbose and counter.skipped:
        print(f"Skipped {counter.skipped} unreadable content image(s) of {counter.attempted} read")
    return network

"""Coarse-to-fine optimization: solve at a small size, upsample, refine at the next size.

A large image converges in far fewer fine-scale steps when it starts from an upsampled coarse
solution (the coarse level fixes the large structures cheaply), and the coarse levels cost a
fraction of a fine step (time grows with the pixel count). This is the road to large images.

:func:`schedule` turns ``scales`` into longest-side sizes; :func:`run` drives the levels: each
level builds its own objective (content/style resized, targets recomputed), starts from the
previous result resized to the new size, and calls :func:`nst_tf.optimize.optimize_image`.

Example:
    >>> from nst_tf.multiscale import schedule
    >>> schedule(512, 3)          # three levels, factor √2, ending at 512
    [256, 362, 512]
    >>> schedule(512, [128, 256]) # explicit sizes; the last is the output size
    [128, 256]
"""

import math

import numpy as np

from nst_tf import images
from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.optimize import OptimizeResult, optimize_image


def schedule(size, scales=None, factor=math.sqrt(2.0)):
    """Longest-side sizes, coarse to fine.

    Args:
        size: the final longest side (used when ``scales`` is None or a count).
        scales: None (one level), a count ``n`` (``n`` levels, each ``factor`` larger than the
            previous, ending at ``size``), or a list of increasing sizes (the last one is the
            output size, ``size`` is then ignored).
        factor: ratio between consecutive levels when ``scales`` is a count.

    Raises:
        ConfigError: a count below 1, sizes that are not positive increasing integers.
    """
    if scales is None:
        scales = 1
    if isinstance(scales, (int, np.integer)) and not isinstance(scales, bool):
        if scales < 1:
            raise ConfigError(f"scales must be a positive count or a list of sizes, got {scales}")
        if size is None or int(size) < 1:
            raise ConfigError(f"size must be a positive integer, got {size!r}")
        return [max(1, round(int(size) / factor ** (scales - 1 - i))) for i in range(scales)]
    try:
        sizes = [int(s) for s in scales]
    except (TypeError, ValueError):
        raise ConfigError(f"scales must be a count or a list of sizes, got {scales!r}") from None
    if not sizes or any(s < 1 for s in sizes) or any(float(s) != float(o) for s, o in
                                                     zip(sizes, scales)):
        raise ConfigError(f"scales must be positive integer sizes, got {scales!r}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ConfigError(f"scales must increase (coarse to fine), got {sizes}")
    return sizes


def steps_per_level(steps, levels):
    """``steps`` as a list with one entry per level (an int is used at every level)."""
    if isinstance(steps, (list, tuple)):
        if len(steps) != levels:
            raise ConfigError(f"steps has {len(steps)} entries for {levels} scales")
        return [int(s) for s in steps]
    return [int(steps)] * levels


def fit_size(shape, longest):
    """``(height, width)`` with the longer side equal to ``longest``, aspect ratio kept."""
    height, width = shape[:2]
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def run(sizes, make_level, first_init, *, steps, level_callbacks=None, checkpoint=None,
        **optimize_kwargs):
    """Optimize level by level, coarse to fine.

    Args:
        sizes: longest-side sizes from :func:`schedule`.
        make_level: ``f(level, size) -> (objective, (height, width))`` builds the objective of
            a level and says the image size it works at.
        first_init: ``f((height, width)) -> image [H, W, C]``, the start of the first level.
        steps: an int or one int per level.
        level_callbacks: ``f(level, steps, step_offset) -> list of callbacks`` (optional).
        checkpoint: a :class:`nst_tf.resume.RunCheckpoint`: levels it has finished are
            skipped (their losses come from it), the level it stopped in continues from its
            saved optimizer state, and every level saves into it.
        **optimize_kwargs: passed to :func:`nst_tf.optimize.optimize_image`.

    Returns:
        The list of :class:`nst_tf.optimize.OptimizeResult`, one per level run (fewer if a
        level was interrupted); the last one holds the final image. Levels skipped on resume
        have ``image=None``.
    """
    per_level = steps_per_level(steps, len(sizes))
    start = checkpoint.start_level if checkpoint is not None else 0
    if start >= len(sizes):
        raise CheckpointError(f"the checkpoint {checkpoint.path} stopped at scale {start + 1}; "
                              f"this run has {len(sizes)}: delete it to start afresh")
    results, image, offset = [], None, 0
    for level, (size, level_steps) in enumerate(zip(sizes, per_level)):
        saved = checkpoint.level(level) if checkpoint is not None else None
        if level < start:  # finished before the run was stopped
            losses = np.asarray(saved.finished_losses(), np.float64)
            results.append(OptimizeResult(image=None, losses=losses, parts={},
                                          steps=len(losses)))
            offset += len(losses)
            continue
        objective, shape = make_level(level, size)
        resumed = saved.saved_image(shape) if saved is not None else None
        if resumed is not None:
            init = resumed[0]                       # overwritten by the restored state anyway
        elif image is None:
            init = first_init(shape)
        else:
            init = images.resize(image, tuple(shape))  # previous result, upsampled
        callbacks = level_callbacks(level, level_steps, offset) if level_callbacks else ()
        result = optimize_image(objective, init, steps=level_steps, callbacks=callbacks,
                                checkpoint=saved, **optimize_kwargs)
        results.append(result)
        offset += result.steps
        image = result.image[0]
        if result.interrupted:
            break
    return results

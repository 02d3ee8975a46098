"""Per-frame stylizers for :func:`nst_tf.video.stylize_video`: any feed-forward model, or Gatys.

* :class:`FeedForwardStylizer` runs any model :func:`nst_tf.stylize` accepts (resolved once
  through :mod:`nst_tf.families`) on batches of frames.
* :class:`GatysStylizer` optimizes each frame with :func:`nst_tf.gatys.run` — the existing L-BFGS /
  Adam loop, the backbone built once — plus Ruder et al.'s temporal loss (a
  :class:`~nst_tf.objective.StyleObjective` ``extra_terms`` hook) toward the flow-warped previous
  output, starting from that warped output (``prevWarped``; unreliable pixels start from the
  frame itself).

Temporal weight: Ruder et al. use 1e3 with content weight 5 on 0–255 pixels and an MSE (their
``WeightedContentLoss``); our content weight is 1 on the same relu4_2 MSE, pixels in [0, 1], so
the same balance is ``1e3 · 255² / 5 ≈ 1.3e7`` (:data:`DEFAULT_TEMPORAL_WEIGHT`). It was derived
for ImageNet VGG19 weights; with other weights or losses retune it.

Example:
    >>> import numpy as np
    >>> from nst_tf.networks import pastiche_network
    >>> stylizer = FeedForwardStylizer(pastiche_network(2, alpha=0.25), 1)
    >>> stylizer(np.random.rand(2, 30, 41, 3).astype("float32")).shape
    (2, 30, 41, 3)
"""

import inspect
import numbers

import numpy as np

from nst_tf.errors import ConfigError

#: Ruder et al.'s temporal weight rewritten for this package's normalization (module docstring).
DEFAULT_TEMPORAL_WEIGHT = 1.3e7

#: Gatys options that video runs set themselves (given as None they are left out: a video
#: resumes by frames, not from a per-frame checkpoint).
_VIDEO_OWNED = ("size", "progress", "callbacks", "save_every", "save_pattern", "checkpoint",
                "checkpoint_every")


class FeedForwardStylizer:
    """``stylizer(frames [B, H, W, 3]) -> [B, H, W, 3]`` with any :func:`nst_tf.stylize` model.

    Args:
        model: anything :func:`nst_tf.stylize` accepts (preset, checkpoint, ``.keras`` file,
            handle, network); resolved once.
        style: the family's style argument (pastiche: an index or a mix; arbitrary-style models:
            a style image); it must select one output per frame.
        batch_size: frames per forward pass.
        **options: the family's options (``jit_compile``, ``precision``, ``fast``...).
    """

    def __init__(self, model, style=None, batch_size=4, **options):
        from nst_tf import families

        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.family, self.network = families.resolve(model)
        families._check_options(self.family, options)
        accepted = inspect.signature(self.family.stylize).parameters
        self.options = dict(options)
        if "crop" in accepted:
            self.options["crop"] = True
        if "batch_size" in accepted:
            self.options["batch_size"] = int(batch_size)
        self.batch_size = int(batch_size)
        self.style = style

    def __call__(self, frames):
        frames = np.asarray(frames, np.float32)
        out = np.asarray(self.family.stylize(self.network, frames, self.style, **self.options),
                         np.float32)
        if out.ndim == 5:
            raise ConfigError(f"style {self.style!r} selects {out.shape[1]} outputs per frame; a "
                              "video takes one style or one mix (e.g. {0: 0.5, 3: 0.5})")
        if out.ndim != 4 or out.shape[0] != frames.shape[0]:
            raise ConfigError(f"the {self.family.name} model returned shape {out.shape} for "
                              f"{frames.shape[0]} frames")
        return np.clip(out[:, :frames.shape[1], :frames.shape[2]], 0.0, 1.0)


class GatysStylizer:
    """Optimize frames one by one with :func:`nst_tf.gatys.run` and a temporal loss.

    Args:
        styles: style image path(s) or array(s).
        style_weights: blend weights, one per style.
        temporal_weight: weight of Ruder's temporal loss (0: warped initialization only).
        first_steps: steps for the first frame (default: 2 × ``steps``, as Ruder's 2000 / 1000).
        **options: :data:`nst_tf.gatys.DEFAULTS` options (``steps``, ``weights``, ``optimizer``,
            ``style_weight``...); ``size`` comes from the frames.
    """

    def __init__(self, styles, style_weights=None, *, temporal_weight=DEFAULT_TEMPORAL_WEIGHT,
                 first_steps=None, **options):
        from nst_tf import gatys

        owned = sorted(name for name in set(options) & set(_VIDEO_OWNED)
                       if options[name] is not None)
        if owned:
            raise ConfigError(f"{', '.join(owned)} cannot be set for video optimization (the "
                              "frame size comes from the video's size option)")
        if styles is None or (isinstance(styles, (list, tuple)) and not styles):
            raise ConfigError("method='gatys' needs style image(s): style='starry.jpg'")
        if isinstance(temporal_weight, bool) or not isinstance(temporal_weight, numbers.Real) \
                or not np.isfinite(temporal_weight) or temporal_weight < 0:
            raise ConfigError(f"temporal_weight must be a finite number >= 0, "
                              f"got {temporal_weight!r}")
        self.options = gatys.validate_options(dict(options, progress=False))
        if self.options["preserve_color"] is not None:
            raise ConfigError("preserve_color is not supported for video (the temporal loss "
                              "compares the optimized images themselves)")
        if self.options["scales"] is not None:
            raise ConfigError("scales (coarse to fine) is not supported for video: the warped "
                              "previous frame is already a good start")
        steps = self.options["steps"]
        self.first_steps = 2 * steps if first_steps is None else first_steps
        gatys.validate_options({"steps": self.first_steps})
        self.styles = styles
        self.style_weights = style_weights
        self.temporal_weight = float(temporal_weight)
        self.user_options = {k: v for k, v in options.items() if k not in _VIDEO_OWNED}
        self.cache = gatys.TransferCache()
        #: One ``{"setup_s", "targets_s", "steps_s", "steps", "traces"}`` per frame: seconds
        #: before the first step (loading, targets, tracing), of which computing the targets
        #: (the frame's content features: one forward pass), seconds of the steps after the
        #: first, and how often the compiled steps in use were traced.
        self.timings = []

    def __call__(self, frame, previous=None, first=False):
        """Stylize one frame; ``previous`` = ``(warped previous output, reliability mask)`` or
        None. Returns ``(image [H, W, 3], interrupted)``.

        Every frame of a clip runs in the same objective and compiled step (kept in
        :attr:`cache`): the frame becomes the new content target, the warped previous output
        and its mask the temporal term's inputs (zero on the first frame), so only the first
        frame pays for tracing."""
        from nst_tf import gatys

        options = dict(self.user_options, size=max(frame.shape[:2]), progress=False)
        if first:
            options["steps"] = self.first_steps
        terms = None
        if previous is not None:
            warped, mask = previous
            weights = mask[..., None]
            options["init"] = weights * warped + (1.0 - weights) * frame
        if self.temporal_weight > 0:
            warped, mask = previous if previous is not None else (frame, np.zeros(
                frame.shape[:2], np.float32))
            terms = _temporal_terms(warped, mask, self.temporal_weight)
        clock = _FrameClock()
        options["callbacks"] = [clock]
        targets = self._target_seconds()
        result = gatys.run(frame, self.styles, self.style_weights, cache=self.cache,
                           extra_terms=terms, **options)
        self.timings.append(dict(clock.summary(), targets_s=self._target_seconds() - targets,
                                 traces=sum(self.cache.steps.tracing_counts())))
        return result.image, result.interrupted

    def _target_seconds(self):
        """Seconds the cached objectives spent computing targets so far."""
        return sum(seconds for o in self.cache.objectives.values()
                   for name, seconds in getattr(o, "seconds", {}).items()
                   if name.endswith("targets"))


class _FrameClock:
    """Times one frame: set-up until the first step is done, minus one later step's time."""

    def __init__(self):
        import time

        self.clock = time.perf_counter
        self.start = self.clock()
        self.marks = []

    def on_begin(self, steps):
        pass

    def on_step(self, step, image, loss, parts):
        self.marks.append((step, self.clock()))

    def summary(self):
        if not self.marks:
            return {"setup_s": self.clock() - self.start, "steps_s": 0.0, "steps": 0}
        (first_step, first), (last_step, last) = self.marks[0], self.marks[-1]
        per_step = (last - first) / (last_step - first_step) if last_step > first_step else 0.0
        return {"setup_s": first - self.start - per_step * first_step,
                "steps_s": last - first, "steps": last_step}


def _temporal(image, target, weights, weight):
    """The temporal term of :func:`_temporal_terms` (module level: one compiled step serves
    every frame, see :class:`nst_tf.objective.Term`)."""
    from nst_tf.losses import temporal_loss

    return weight * temporal_loss(image, target, weights)


def _temporal_terms(warped, mask, weight):
    """``f(shape) -> {"temporal": Term(weight · temporal_loss(x, ω, c))}`` for gatys.run."""

    def make(shape):
        from nst_tf import images
        from nst_tf.objective import Term

        target, weights = warped, mask
        if tuple(shape) != warped.shape[:2]:
            target = images.resize(warped, tuple(shape))
            weights = images.resize(mask[..., None], tuple(shape), method="bilinear")[..., 0]
        return {"temporal": Term(_temporal, target=np.asarray(target[None], np.float32),
                                 weights=np.asarray(weights[None], np.float32),
                                 weight=np.float32(weight))}

    return make

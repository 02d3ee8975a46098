"""Temporal consistency: reliability masks, blending, and the warping-error metric.

* :func:`occlusion_mask` — Ruder et al.'s forward-backward check (consistencyChecker.cpp): a pixel
  is unreliable when the flow and the reverse flow sampled at its destination do not cancel
  (``|w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5``, disocclusion), on motion boundaries
  (``|∇ŵ_x|² + |∇ŵ_y|² > 0.01 |ŵ|² + 0.002``, optional) or when it leaves the frame.
* :func:`blend_with_previous` — feed-forward outputs pulled toward the flow-warped previous output
  where the mask says the flow is reliable (a per-pixel exponential moving average along motion
  trajectories; occluded and new pixels keep the network's output), then brought back to the
  network output's per-channel mean and contrast.
* :func:`warping_error` — Lai et al. (ECCV 2018): ``E = mean_t Σ_p M_t(p) ‖V_t(p) − V̂_t+1(p)‖² /
  (C · Σ_p M_t(p))``, where ``V̂_t+1`` is ``V_t+1`` warped back with the forward flow of the *input*
  video and ``M_t`` its occlusion mask (pixels in [0, 1], squared error per channel value).

Example:
    >>> import numpy as np
    >>> from nst_tf.video.consistency import occlusion_mask
    >>> shift = np.zeros((6, 8, 2), np.float32); shift[..., 0] = 2.0   # content moved 2 px left
    >>> occlusion_mask(shift, -shift)[0].tolist()                       # the last 2 columns left
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
"""

import numpy as np

from nst_tf.errors import ConfigError, ImageError
from nst_tf.video.warp import warp

#: Default weight of the warped previous output in :func:`blend_with_previous`.
DEFAULT_STRENGTH = 0.7


def _check_flow(flow, what):
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ImageError(f"{what} must be [H, W, 2], got shape {flow.shape}")
    return flow


def motion_boundaries(flow):
    """True where ``|∇u|² + |∇v|² > 0.01 |flow|² + 0.002`` (central differences)."""
    flow = _check_flow(flow, "flow")
    gradient = np.zeros(flow.shape[:2], np.float32)
    for channel in range(2):
        for axis in range(2):
            if flow.shape[axis] > 1:
                gradient += np.gradient(flow[..., channel], axis=axis) ** 2
    return gradient > 0.01 * np.sum(flow ** 2, axis=-1) + 0.002


def occlusion_mask(flow, reverse_flow, *, boundaries=True, blur=0.0):
    """Where ``flow`` can be trusted: float32 ``[H, W]``, 1 reliable, 0 not.

    Args:
        flow: ``[H, W, 2]`` flow from frame A to frame B (``A(p) ≈ B(p + flow(p))``); for Ruder's
            mask of frame t this is the backward flow t → t−1.
        reverse_flow: the flow from B to A (frame t−1 → t).
        boundaries: also mark motion boundaries unreliable (Ruder's second test).
        blur: Gaussian sigma applied to the binary mask (Ruder uses 0.8; 0 keeps it binary).

    Example:
        >>> import numpy as np
        >>> still = np.zeros((4, 4, 2), np.float32)
        >>> float(occlusion_mask(still, still).min())
        1.0
    """
    flow = _check_flow(flow, "flow")
    reverse_flow = _check_flow(reverse_flow, "reverse_flow")
    if flow.shape != reverse_flow.shape:
        raise ImageError(f"flow {flow.shape} and reverse_flow {reverse_flow.shape} differ in "
                         "shape")
    back, inside = warp(reverse_flow, flow)  # w̃: the reverse flow at p + ŵ(p)
    mismatch = np.sum((flow + back) ** 2, axis=-1)
    scale = np.sum(flow ** 2, axis=-1) + np.sum(back ** 2, axis=-1)
    reliable = inside & (mismatch <= 0.01 * scale + 0.5)
    if boundaries:
        reliable &= ~motion_boundaries(flow)
    mask = reliable.astype(np.float32)
    if blur:
        from nst_tf.video.deps import require

        mask = require("cv2").GaussianBlur(mask, (0, 0), float(blur))
    return mask


def check_strength(strength):
    """Raise ConfigError unless ``strength`` is a number in [0, 1]."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ConfigError(f"temporal strength must be a number in [0, 1], got {strength!r}")


def _channel_stats(image):
    """Per-channel mean and standard deviation of ``[H, W, C]`` (one pass of matrix products,
    several times faster than ``mean`` / ``std`` over two axes)."""
    flat = image.reshape(-1, image.shape[-1])
    ones = np.ones(flat.shape[0], np.float32)
    mean = (ones @ flat).astype(np.float64) / flat.shape[0]
    square = np.einsum("ij,ij->j", flat, flat, dtype=np.float64) / flat.shape[0]
    return mean, np.sqrt(np.maximum(square - mean ** 2, 0.0))


def blend_with_previous(stylized, warped_previous, mask, strength=DEFAULT_STRENGTH,
                        keep_statistics=True):
    """``stylized + strength · mask · (warped_previous − stylized)``, float32 ``[H, W, 3]``.

    ``keep_statistics`` (default): the blend is then shifted and scaled per channel to the mean
    and standard deviation of ``stylized``. Averaging two stylized frames whose textures do not
    line up lowers their contrast, and the style with it (``benchmarks/video.py``: Gram style loss
    +280 % at strength 0.7 without it, +7 % with it, for 8x less warping error).

    ``strength`` in [0, 1]: 0 is frame by frame, 1 copies the warped previous output wherever the
    flow is reliable (no flicker but detail smeared by repeated resampling). Each output is
    blended with the previous *blended* output, so this is an exponential moving average of the
    network's outputs along the motion, restarted wherever the mask is 0.

    Example:
        >>> import numpy as np
        >>> out = blend_with_previous(np.zeros((2, 2, 3)), np.ones((2, 2, 3)), np.ones((2, 2)),
        ...                           strength=0.25, keep_statistics=False)
        >>> float(out.max())
        0.25
    """
    check_strength(strength)
    stylized = np.asarray(stylized, np.float32)
    weight = float(strength) * np.asarray(mask, np.float32)[..., None]
    out = stylized + weight * (np.asarray(warped_previous, np.float32) - stylized)
    if keep_statistics:
        (mean, std), (target_mean, target_std) = _channel_stats(out), _channel_stats(stylized)
        scale = np.where(std > 1e-6, target_std / np.maximum(std, 1e-6), 1.0)
        out = np.clip(out * scale.astype(np.float32)
                      + (target_mean - mean * scale).astype(np.float32), 0.0, 1.0)
    return out.astype(np.float32, copy=False)


def pair_warping_error(frame, next_frame, flow, mask):
    """Lai et al.'s error of one pair: ``Σ M ‖V_t − warp(V_t+1, flow)‖² / (C · Σ M)``.

    ``flow`` is the forward flow t → t+1 of the input video, ``mask`` its occlusion mask. An all-
    occluded pair falls back to the mean over every pixel (as Lai et al.'s script does).
    """
    frame = np.asarray(frame, np.float32)
    warped, _ = warp(next_frame, flow)
    squared = np.sum((frame - warped) ** 2, axis=-1)
    total = float(np.sum(mask))
    channels = frame.shape[-1] if frame.ndim == 3 else 1
    if total <= 0:
        return float(np.mean(squared) / channels)
    return float(np.sum(mask * squared) / (channels * total))


def _frames(frames, what):
    if isinstance(frames, (str, bytes)) or hasattr(frames, "__fspath__"):
        from nst_tf.video.io import open_frames

        return iter(open_frames(frames))
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise ImageError(f"{what} must be [T, H, W, 3] frames, got shape {frames.shape}")
    return iter(frames)


def warping_error(frames, reference=None, *, flow="medium", boundaries=True, per_pair=False):
    """Lai et al.'s warping error of a video (lower = more temporally stable).

    Args:
        frames: the video to score: a ``[T, H, W, 3]`` array, an iterable of ``[H, W, 3]`` frames
            in [0, 1], or a path (video file, frame folder or pattern; see
            :func:`nst_tf.video.io.open_frames`). Streamed: two frames in memory at a time.
        reference: the video the flow and masks come from (the *input* of a stylization), same
            forms and frame count; default ``frames`` itself.
        flow: a DIS preset name (``"medium"``...) or a callable ``f(a, b) -> [H, W, 2]`` with
            ``a(p) ≈ b(p + f(p))`` (e.g. the exact flow of a synthetic clip).
        boundaries: exclude motion boundaries from the mask, as Ruder's and Lai's checks do.
        per_pair: return the list of per-pair errors instead of their mean.

    Raises:
        ImageError: fewer than two frames, different frame counts or sizes.

    Example:
        >>> import numpy as np
        >>> still = np.full((3, 16, 16, 3), 0.5, np.float32)
        >>> warping_error(still, flow=lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32))
        0.0
    """
    if isinstance(flow, str):
        from nst_tf.video.flow import FlowEstimator

        flow = FlowEstimator(flow)
    outputs = _frames(frames, "frames")
    inputs = outputs if reference is None else _frames(reference, "reference")
    same = reference is None
    errors, previous, previous_ref = [], None, None
    for index, frame in enumerate(outputs):
        ref = frame if same else next(inputs, None)
        if ref is None:
            raise ImageError(f"reference has fewer frames ({index}) than frames")
        frame = np.asarray(frame, np.float32)
        ref = np.asarray(ref, np.float32)
        if frame.shape[:2] != ref.shape[:2]:
            raise ImageError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but its "
                             f"reference is {ref.shape[1]}x{ref.shape[0]}")
        if previous is not None:
            if frame.shape != previous.shape:
                raise ImageError(f"frame {index} has shape {frame.shape}, frame {index - 1} "
                                 f"{previous.shape}")
            forward = flow(previous_ref, ref)
            backward = flow(ref, previous_ref)
            mask = occlusion_mask(forward, backward, boundaries=boundaries)
            errors.append(pair_warping_error(previous, frame, forward, mask))
        previous, previous_ref = frame, ref
    if not same and next(inputs, None) is not None:
        raise ImageError("reference has more frames than frames")
    if not errors:
        raise ImageError("the warping error needs at least two frames")
    return errors if per_pair else float(np.mean(errors))

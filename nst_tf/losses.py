"""Loss functions for style transfer: pure TensorFlow functions on feature maps.

Every function takes feature maps of shape ``[B, H, W, C]`` (or images ``[B, H, W, 3]`` for the
total-variation loss), uses TF ops only, and works inside ``tf.function`` and XLA. Batches are
averaged: the loss of a batch is the mean of the per-example losses. Targets broadcast over the
batch (a target computed from one style image serves a batch of any size).

=====================  ====================================================================
loss                   definition (per example, F = features reshaped to ``[N = H·W, C]``)
=====================  ====================================================================
content_loss           ``mean((F − P)²)`` over all H·W·C entries
gram_loss              ``mean((G − T)²)`` over the C·C entries, ``G = FᵀF / (H·W)``
total_variation_loss   L2: ``mean((x[i+1,j] − x[i,j])²) + mean((x[i,j+1] − x[i,j])²)``;
                       L1: the same with ``|·|`` instead of ``(·)²`` (means over B, rows, cols, channels)
sliced_wasserstein     ``mean_k mean_n (sort(F·d_k)[n] − Q_k(n))²``: F projected on unit
                       directions ``d_k``, sorted, compared with the target's sorted
                       projections ``Q_k`` resampled to N quantiles
gaussian_w2_loss       ``|μ₁−μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₂^½ Σ₁ Σ₂^½)^½)`` (squared W2 distance
                       of the Gaussians with the features' channel means and covariances)
mean_std_loss          ``mean_c (μ₁−μ₂)² + mean_c (σ₁−σ₂)²`` (per-channel mean and std)
diversity_loss         ``−mean_i ln(min_{j≠i} d(x_i, x_j) + ε)`` over a batch, ``d`` the RMS
                       difference (Ulyanov et al. 2017's entropy estimate; not a per-example loss)
=====================  ====================================================================

Style losses also exist as small objects in :data:`STYLE_LOSSES` with ``.target(features)``
(statistics of the style features, computed once) and ``.loss(features, stats)``. A new style loss
is one small :class:`StyleLoss` subclass with ``target`` and ``compare`` methods.

Example:
    >>> import tensorflow as tf
    >>> from nst_tf import losses
    >>> f = tf.random.stateless_normal([1, 8, 8, 4], seed=[1, 2])
    >>> losses.gram_matrix(f).shape
    TensorShape([1, 4, 4])
    >>> gram = losses.STYLE_LOSSES["gram"]
    >>> float(gram.loss(f, gram.target(f)))
    0.0
"""

import numpy as np
import tensorflow as tf

__all__ = [
    "gram_matrix", "content_loss", "gram_loss", "total_variation_loss", "temporal_loss",
    "random_directions", "sorted_projections", "resample_sorted",
    "sliced_wasserstein_loss", "sliced_wasserstein_loss_from_sorted",
    "feature_moments", "psd_sqrt", "gaussian_w2_loss", "gaussian_w2_loss_from_stats",
    "channel_mean_std", "mean_std_loss", "pairwise_distances", "diversity_loss",
    "StyleLoss", "GramStyleLoss", "SlicedWassersteinStyleLoss", "GaussianW2StyleLoss",
    "MeanStdStyleLoss", "STYLE_LOSSES", "get_style_loss", "feature_sums", "MOMENTS",
]


# --- Helpers ----------------------------------------------------------------------------------

def _flatten(features):
    """``[B, H, W, C]`` → ``[B, H·W, C]``."""
    shape = tf.shape(features)
    return tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])


def _num_pixels(features, dtype):
    shape = tf.shape(features)
    return tf.cast(shape[1] * shape[2], dtype)


# --- Content, Gram, total variation -------------------------------------------------------------

def gram_matrix(features):
    """Gram matrix ``G = FᵀF / (H·W)`` of ``[B, H, W, C]`` features → ``[B, C, C]``.

    Divided by the number of pixels only, not by C (Magenta's convention), so it is the matrix of
    uncentred second moments of the channels over pixel positions.
    """
    return _gram(_flatten(features)) / _num_pixels(features, features.dtype)


@tf.custom_gradient
def _gram(flat):
    """``FᵀF`` of ``[B, N, C]`` with the gradient ``F·(dG + dGᵀ)`` as one matmul.

    The same gradient autodiff gives (it differentiates both matmul operands separately: two
    ``[N, C]`` matmuls and their sum); one product on the small ``[C, C]`` sum instead saves a
    pass over the feature map, about a quarter of the Gram loss' time at 512² on CPU.
    """

    def grad(upstream):
        return tf.matmul(flat, upstream + tf.linalg.matrix_transpose(upstream))

    return tf.matmul(flat, flat, transpose_a=True), grad


def content_loss(features, target):
    """Mean squared error between feature maps (same shape, or a target that broadcasts)."""
    return tf.reduce_mean(tf.math.squared_difference(features, tf.cast(target, features.dtype)))


def gram_loss(features, target_gram):
    """``mean((G(features) − T)²)`` with T of shape ``[C, C]`` or ``[B or 1, C, C]``."""
    gram = gram_matrix(features)
    return tf.reduce_mean(tf.math.squared_difference(gram, tf.cast(target_gram, gram.dtype)))


def total_variation_loss(image, kind="l2"):
    """Total variation of ``[B, H, W, C]`` images, as the sum of two means.

    ``kind="l2"``: ``mean((x[:, 1:, :] − x[:, :-1, :])²) + mean((x[:, :, 1:] − x[:, :, :-1])²)``,
    i.e. the mean squared vertical difference plus the mean squared horizontal difference.
    ``kind="l1"``: the same with absolute values (its gradient is ``sign(d)``, 0 where d = 0).
    Both are independent of the image size, so one weight serves every resolution.
    """
    if kind not in ("l1", "l2"):
        raise ValueError(f"total variation kind must be 'l1' or 'l2', got {kind!r}")
    return _total_variation(image, kind)


def temporal_loss(image, target, weights):
    """Ruder et al.'s short-term temporal loss ``Σ_k c_k (x_k − ω_k)² / D`` (D = H·W·C).

    ``image`` and ``target`` (the flow-warped previous output ω) are ``[B, H, W, C]``; ``weights``
    (the per-pixel reliability c in [0, 1]) is ``[B, H, W]`` or ``[B, H, W, 1]``, shared by the
    channels. The target is a constant: the gradient flows into ``image`` only.

    Example:
        >>> import numpy as np
        >>> x, w = np.ones((1, 2, 2, 3), np.float32), np.zeros((1, 2, 2, 3), np.float32)
        >>> float(temporal_loss(x, w, np.array([[[1, 0], [0, 0]]], np.float32)))
        0.25
    """
    image = tf.convert_to_tensor(image)
    target = tf.cast(target, image.dtype)
    weights = tf.cast(weights, image.dtype)
    if weights.shape.rank == image.shape.rank - 1:
        weights = weights[..., None]
    return tf.reduce_mean(weights * tf.math.squared_difference(image, target))


def _total_variation(image, kind):
    """The total variation with its gradient written out (same values as autodiff's).

    With ``d = x[i+1] − x[i]`` and ``φ' = 2d`` (l2) or ``sign(d)`` (l1), the gradient at pixel
    ``i`` is ``(φ'(d[i−1]) − φ'(d[i])) / n`` per direction: one zero-padded difference, instead
    of autodiff's four slice-gradient scatters and their sum (about 20 → 3 ms at 512² on CPU).
    """

    @tf.custom_gradient
    def tv(image):
        down = image[:, 1:, :, :] - image[:, :-1, :, :]
        right = image[:, :, 1:, :] - image[:, :, :-1, :]
        phi, dphi = ((tf.square, lambda d: 2.0 * d) if kind == "l2" else (tf.abs, tf.sign))

        def grad(upstream):
            n_down = tf.cast(tf.size(down), image.dtype)
            n_right = tf.cast(tf.size(right), image.dtype)
            g_down = tf.pad(dphi(down) * (upstream / n_down), [[0, 0], [1, 1], [0, 0], [0, 0]])
            g_right = tf.pad(dphi(right) * (upstream / n_right), [[0, 0], [0, 0], [1, 1], [0, 0]])
            return ((g_down[:, :-1] - g_down[:, 1:]) + (g_right[:, :, :-1] - g_right[:, :, 1:]))

        return tf.reduce_mean(phi(down)) + tf.reduce_mean(phi(right)), grad

    return tv(image)


# --- Sliced Wasserstein -------------------------------------------------------------------------

def random_directions(channels, num_projections=None, seed=0, dtype=tf.float32):
    """``[C, P]`` matrix of unit column vectors, uniformly distributed on the sphere, seeded.

    ``num_projections=None`` uses P = C. Drawn with NumPy (float64, then cast), so the same
    ``seed`` gives the same directions on every run, device and dtype, inside ``tf.function``
    and XLA too (TF's stateless RNG may differ between XLA and the CPU kernels).
    """
    channels = int(channels)
    num_projections = channels if num_projections is None else int(num_projections)
    if num_projections < 1:
        raise ValueError(f"num_projections must be >= 1, got {num_projections}")
    normal = np.random.default_rng(int(seed)).standard_normal((channels, num_projections))
    directions = normal / np.linalg.norm(normal, axis=0, keepdims=True)
    return tf.constant(directions, dtype=dtype)


def sorted_projections(features, directions):
    """Project ``[B, H, W, C]`` features on ``[C, P]`` directions and sort: → ``[B, P, H·W]``."""
    projected = tf.matmul(_flatten(features), tf.cast(directions, features.dtype))  # [B, N, P]
    return tf.sort(tf.transpose(projected, [0, 2, 1]), axis=-1)


def resample_sorted(sorted_values, num):
    """Resample sorted samples ``[..., M]`` at ``num`` quantiles → ``[..., num]``.

    Sample j of M sits at quantile ``(j + ½)/M``; output k is the linear interpolation at
    quantile ``(k + ½)/num``, clamped to the first / last sample (as ``numpy.interp``). The
    position is computed in exact integer arithmetic, so ``num == M`` returns the input unchanged.
    """
    m = tf.shape(sorted_values, out_type=tf.int64)[-1]
    num = tf.cast(num, tf.int64)
    k = tf.range(num, dtype=tf.int64)
    # Position in target-sample units: ((k + ½)·M/num − ½) = ((2k + 1)·M − num) / (2·num).
    numerator = (2 * k + 1) * m - num
    denominator = 2 * num
    low = tf.math.floordiv(numerator, denominator)
    frac = tf.cast(numerator - low * denominator, sorted_values.dtype) / tf.cast(
        denominator, sorted_values.dtype)
    below = low < 0
    above = low >= m - 1
    low = tf.clip_by_value(low, 0, m - 1)
    high = tf.minimum(low + 1, m - 1)
    frac = tf.where(below | above, tf.zeros_like(frac), frac)
    lo_values = tf.gather(sorted_values, low, axis=-1)
    hi_values = tf.gather(sorted_values, high, axis=-1)
    return lo_values + frac * (hi_values - lo_values)


def sliced_wasserstein_loss_from_sorted(features, target_sorted, directions):
    """Sliced Wasserstein loss against precomputed sorted target projections ``[B or 1, P, M]``.

    The image's N = H·W sorted projections are compared with the target's resampled to N
    quantiles, so image and target may have different spatial sizes.
    """
    return _sorted_distance(sorted_projections(features, directions), target_sorted)


def _sorted_distance(projected, target_sorted):
    """Mean squared difference of sorted ``[B, P, N]`` and resampled sorted ``[B|1, P, M]``."""
    target = resample_sorted(tf.cast(target_sorted, projected.dtype), tf.shape(projected)[-1])
    return tf.reduce_mean(tf.math.squared_difference(projected, target))


def sliced_wasserstein_loss(features, target_features, num_projections=None, seed=0):
    """Sliced (squared) Wasserstein-2 distance between the pixel distributions of two feature maps.

    Each of P seeded unit directions (see :func:`random_directions`) projects the C-dimensional
    feature vectors of every pixel to a number; sorting gives the 1-D quantile function, and the
    loss is the mean squared difference of the quantile functions over pixels and directions.
    ``features`` and ``target_features`` may have different H, W.
    """
    directions = random_directions(features.shape[-1], num_projections, seed, features.dtype)
    target_sorted = sorted_projections(tf.cast(target_features, features.dtype), directions)
    return sliced_wasserstein_loss_from_sorted(features, target_sorted, directions)


# --- Gaussian W2 --------------------------------------------------------------------------------

def feature_moments(features):
    """Channel means ``[B, C]`` and (biased, divide-by-N) covariances ``[B, C, C]``.

    The covariance is computed from centred features, which keeps float32 accurate when the
    means are large compared with the spread.
    """
    flat = _flatten(features)
    mean = tf.reduce_mean(flat, axis=1)
    centred = flat - mean[:, None, :]
    cov = tf.matmul(centred, centred, transpose_a=True) / _num_pixels(features, features.dtype)
    return mean, cov


def psd_sqrt(matrix):
    """Square root of symmetric positive semi-definite matrices ``[..., C, C]``.

    Eigen-decomposition with negative eigenvalues (round-off) clamped to 0:
    ``V diag(√max(λ, 0)) Vᵀ``. Used for targets only (no gradient needed).
    """
    matrix = 0.5 * (matrix + tf.linalg.matrix_transpose(matrix))
    values, vectors = tf.linalg.eigh(matrix)
    roots = tf.sqrt(tf.maximum(values, 0.0))
    return tf.matmul(vectors * roots[..., None, :], vectors, transpose_b=True)


def _trace_sqrt(matrix):
    """``tr(M^½)`` for symmetric PSD ``M`` with a finite gradient.

    ``tr(M^½) = Σ √λᵢ``. The derivative of √λ is infinite at λ = 0, and covariances of features
    with fewer pixels than channels always have zero eigenvalues. So eigenvalues below a floor
    (``1e-6`` × the largest in float32, ``1e-12`` × in float64, i.e. below round-off) count as
    0 with a zero gradient; the others get the exact gradient ``V diag(1/(2√λ)) Vᵀ``. Only the
    eigenvalues are used, so the gradient does not involve ``1/(λᵢ − λⱼ)`` and stays finite
    when eigenvalues repeat. (Newton–Schulz iterations would be XLA-friendlier but converge
    slowly for the small eigenvalues that dominate near-singular covariances.)
    """
    matrix = 0.5 * (matrix + tf.linalg.matrix_transpose(matrix))
    values = tf.linalg.eigvalsh(matrix)
    relative = 1e-12 if matrix.dtype == tf.float64 else 1e-6
    floor = tf.stop_gradient(relative * tf.reduce_max(tf.abs(values), axis=-1, keepdims=True))
    floor = tf.maximum(floor, tf.constant(1e-30, values.dtype))
    kept = values > floor
    roots = tf.where(kept, tf.sqrt(tf.maximum(values, floor)), tf.zeros_like(values))
    return tf.reduce_sum(roots, axis=-1)


def gaussian_w2_loss_from_stats(features, target_mean, target_cov_sqrt, target_cov_trace):
    """Squared W2 distance to a Gaussian given by its mean ``[B|1, C]``, ``Σ₂^½`` and ``tr(Σ₂)``.

    The means and covariance are computed in the input's dtype (the N·C² flops), everything
    after that in float64 (only C × C matrices): the loss is a difference of large traces, and
    float32 eigenvalues lose the small eigenvalues that carry much of
    ``tr((Σ₂^½ Σ₁ Σ₂^½)^½)`` (0.2 % error on a VGG layer all in float32, ~1e-7 this way).
    The result has the input's dtype.
    """
    mean, cov = feature_moments(features)
    loss = _w2_from_moments(tf.cast(mean, tf.float64), tf.cast(cov, tf.float64), target_mean,
                            target_cov_sqrt, target_cov_trace)
    return tf.cast(loss, features.dtype)


def _w2_from_moments(mean, cov, target_mean, target_cov_sqrt, target_cov_trace):
    """The float64 part of :func:`gaussian_w2_loss_from_stats`, batch-averaged."""
    target_mean = tf.cast(target_mean, tf.float64)
    root = tf.cast(target_cov_sqrt, tf.float64)
    mean_term = tf.reduce_sum(tf.square(mean - target_mean), axis=-1)
    cross = tf.matmul(tf.matmul(root, cov), root)
    cov_term = (tf.linalg.trace(cov) + tf.cast(target_cov_trace, tf.float64)
                - 2.0 * _trace_sqrt(cross))
    return tf.reduce_mean(mean_term + cov_term)


def gaussian_w2_loss(features, target_features):
    """Squared Wasserstein-2 distance between Gaussian fits of two feature maps' pixel vectors.

    ``W2² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₂^½ Σ₁ Σ₂^½)^½)``, with μ, Σ the channel means and
    biased covariances over pixels. Not divided by C: it grows with the channel count. See
    :func:`_trace_sqrt` for how the matrix square root is kept differentiable.
    """
    target_mean, target_cov = feature_moments(tf.cast(target_features, tf.float64))
    return gaussian_w2_loss_from_stats(features, target_mean, psd_sqrt(target_cov),
                                       tf.linalg.trace(target_cov))


# --- Mean / std ---------------------------------------------------------------------------------

def channel_mean_std(features, eps=1e-5):
    """Per-channel mean and standard deviation over pixels, each ``[B, C]``.

    ``std = √(var + eps)`` so the gradient stays finite for constant channels.
    """
    flat = _flatten(features)
    mean = tf.reduce_mean(flat, axis=1)
    var = tf.reduce_mean(tf.square(flat - mean[:, None, :]), axis=1)
    return mean, tf.sqrt(var + eps)


def mean_std_loss(features, target_features, eps=1e-5):
    """``mean_c (μ₁ − μ₂)² + mean_c (σ₁ − σ₂)²`` with per-channel statistics over pixels."""
    mean, std = channel_mean_std(features, eps)
    target_mean, target_std = channel_mean_std(tf.cast(target_features, features.dtype), eps)
    return (tf.reduce_mean(tf.math.squared_difference(mean, target_mean))
            + tf.reduce_mean(tf.math.squared_difference(std, target_std)))


# --- Diversity (Improved Texture Networks) ------------------------------------------------------

def pairwise_distances(embeddings):
    """RMS distances ``d_ij = √(mean_k (e_ik − e_jk)²)`` between the rows of ``embeddings``
    ``[B, ...]`` (flattened per example) → ``[B, B]`` (zero diagonal).

    Computed from the Gram matrix ``‖e_i‖² + ‖e_j‖² − 2 e_i·e_j`` (no ``[B, B, D]`` tensor), in
    float32, clipped at 0 against rounding.
    """
    e = tf.cast(tf.reshape(embeddings, [tf.shape(embeddings)[0], -1]), tf.float32)
    dim = tf.cast(tf.shape(e)[1], tf.float32)
    squares = tf.reduce_sum(tf.square(e), axis=1)
    d2 = squares[:, None] + squares[None, :] - 2.0 * tf.matmul(e, e, transpose_b=True)
    d2 = tf.maximum(d2, 0.0) * (1.0 - tf.eye(tf.shape(e)[0]))
    return tf.sqrt(d2 / dim + 1e-20)


def diversity_loss(embeddings, eps=1e-3):
    """Negative Kozachenko–Leonenko entropy estimate of a batch (Ulyanov et al. 2017, eq. 8):
    ``−(1/B) Σ_i ln(min_{j≠i} d_ij + eps)`` with ``d`` from :func:`pairwise_distances`.

    Minimizing it pushes every sample away from its nearest neighbour in the batch. ``embeddings``
    is ``[B, ...]`` with ``B >= 2``: images (pixels) or feature maps of a loss-network layer. The
    RMS distance makes the value independent of the embedding's size; ``eps`` keeps the
    logarithm finite for identical samples.

    Example:
        >>> x = tf.constant([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]])
        >>> round(float(diversity_loss(x, eps=0.0)), 4)   # nearest: 3.5355, 0.7071, 0.7071
        -0.1899
    """
    d = pairwise_distances(embeddings)
    batch = tf.shape(d)[0]
    tf.debugging.assert_greater_equal(batch, 2, message="diversity_loss needs a batch of >= 2")
    nearest = tf.reduce_min(d + tf.eye(batch) * tf.reduce_max(d) * 2.0 + tf.eye(batch), axis=1)
    return -tf.reduce_mean(tf.math.log(nearest + eps))


# --- Sums over pixels (the additive statistics of exact tiling) -------------------------------

#: Sums over the pixels of ``[B, H, W, C]`` features that moment-based style losses need:
#: ``"sum"`` ΣF → ``[B, C]``, ``"outer"`` ΣFᵀF → ``[B, C, C]``, ``"squares"`` ΣF² → ``[B, C]``.
MOMENTS = ("sum", "outer", "squares")


def feature_sums(features, moments):
    """``{name: sum over pixels}`` for the names in ``moments`` (see :data:`MOMENTS`), in the
    features' dtype. They add up over any partition of the pixels (tiles)."""
    flat = _flatten(features)
    out = {}
    for name in moments:
        if name == "sum":
            out[name] = tf.reduce_sum(flat, axis=1)
        elif name == "outer":
            out[name] = tf.matmul(flat, flat, transpose_a=True)
        elif name == "squares":
            out[name] = tf.reduce_sum(tf.square(flat), axis=1)
        else:
            raise ValueError(f"unknown moment {name!r}; valid: {MOMENTS}")
    return out


def _moment_mean_cov(sums, count):
    """Mean and biased covariance from float64 sums (the raw-moment formula; float64 keeps the
    cancellation in ``ΣFᵀF/N − μμᵀ`` harmless)."""
    mean = tf.cast(sums["sum"], tf.float64) / count
    cov = tf.cast(sums["outer"], tf.float64) / count - mean[:, :, None] * mean[:, None, :]
    return mean, cov


# --- Style-loss objects: targets computed once -------------------------------------------------

class StyleLoss:
    """A style loss in three small steps, so that everything that can be computed once is.

    * ``target(style_features) -> stats``: statistics of a style image, computed once.
    * ``prepare(features) -> image_stats``: statistics of the image being optimized, computed
      once per step even when it is compared with several style images (default: identity).
    * ``compare(image_stats, stats) -> scalar``: the loss.

    ``loss(features, stats)`` and ``blended_loss(features, [stats...], weights)`` (the
    ``Σ wᵢ · loss(features, statsᵢ)`` of a style blend) are built from those. Subclasses set
    ``name`` and implement ``target`` and ``compare`` (and ``prepare`` if useful) with TF ops.
    ``stats`` is any nest of tensors; it must not depend on the size of the optimized image.

    Example, a loss on channel means only::

        class MeanLoss(StyleLoss):
            name = "mean"
            def target(self, features):
                return tf.reduce_mean(features, axis=[1, 2])
            prepare = target
            def compare(self, means, target_means):
                return tf.reduce_mean(tf.square(means - target_means))
    """

    name = "style"

    #: The sums over pixels that ``prepare`` is a function of (names in :data:`MOMENTS`), or
    #: None when it is not (sorting, quantiles). Losses with moments can be computed exactly by
    #: tiles (:mod:`nst_tf.tiling`): the sums add up over tiles, and :meth:`from_moments` turns
    #: them into what ``prepare`` returns.
    moments = None

    def target(self, features):
        raise NotImplementedError

    def prepare(self, features):
        return features

    def from_moments(self, sums, count):
        """``prepare(features)`` rebuilt from ``sums = feature_sums(features, self.moments)``
        (float64) over ``count`` pixels; the result is float64, so the loss of a tiled image and
        its gradient with respect to the sums are computed in float64."""
        raise NotImplementedError(f"{type(self).__name__} is not a function of feature sums")

    def target_from_moments(self, sums, count):
        """``target(features)`` from the sums of the style image's features (tiled style images)."""
        raise NotImplementedError(f"{type(self).__name__} is not a function of feature sums")

    def compare(self, image_stats, stats):
        raise NotImplementedError

    def loss(self, features, stats):
        """The loss of ``features`` against one style's ``stats``."""
        return self.compare(self.prepare(features), stats)

    def blended_loss(self, features, stats_list, weights):
        """``Σ wᵢ · loss(features, statsᵢ)``, preparing ``features`` once (weights: floats)."""
        return self.blended_compare(self.prepare(features), stats_list, weights, features.dtype)

    def blended_compare(self, prepared, stats_list, weights, dtype=tf.float32):
        """``Σ wᵢ · compare(prepared, statsᵢ)``; weights equal to 0 are skipped (a zero of
        ``dtype`` when all are)."""
        total = None
        for weight, stats in zip(weights, stats_list):
            if weight == 0:
                continue
            term = float(weight) * self.compare(prepared, stats)
            total = term if total is None else total + term
        return tf.zeros([], dtype) if total is None else total

    def __call__(self, features, target_features):
        """The loss between two feature maps, computing the target on the fly."""
        return self.loss(features, self.target(target_features))

    def __repr__(self):
        return f"{type(self).__name__}()"


class GramStyleLoss(StyleLoss):
    """Gatys et al.: mean squared difference of Gram matrices (:func:`gram_loss`)."""

    name = "gram"
    moments = ("outer",)

    def target(self, features):
        return gram_matrix(features)

    prepare = target

    def from_moments(self, sums, count):
        return tf.cast(sums["outer"], tf.float64) / count

    def target_from_moments(self, sums, count):
        return tf.cast(self.from_moments(sums, count), tf.float32)

    def compare(self, gram, target_gram):
        return tf.reduce_mean(tf.math.squared_difference(gram, tf.cast(target_gram, gram.dtype)))


class SlicedWassersteinStyleLoss(StyleLoss):
    """Sliced Wasserstein distance of the pixel feature distributions (Heitz et al. 2021).

    The directions are fixed by ``seed`` (not redrawn each step), so the target's sorted
    projections are computed once; ``num_projections=None`` uses as many directions as channels.
    """

    name = "sliced_wasserstein"

    def __init__(self, num_projections=None, seed=0):
        self.num_projections = num_projections
        self.seed = seed

    def directions(self, channels, dtype=tf.float32):
        """The ``[C, P]`` unit directions this loss projects on (the same for every call)."""
        return random_directions(channels, self.num_projections, self.seed, dtype)

    def target(self, features):
        return sorted_projections(features, self.directions(features.shape[-1], features.dtype))

    prepare = target

    def compare(self, projected, target_sorted):
        return _sorted_distance(projected, target_sorted)

    def __repr__(self):
        return f"{type(self).__name__}(num_projections={self.num_projections}, seed={self.seed})"


class GaussianW2StyleLoss(StyleLoss):
    """Squared W2 distance between Gaussian fits (:func:`gaussian_w2_loss`), as in CKB's W2 loss."""

    name = "gaussian_w2"

    def target(self, features):
        # Kept in float64, like the loss computation (see gaussian_w2_loss_from_stats).
        mean, cov = feature_moments(tf.cast(features, tf.float64))
        return {"mean": mean, "cov_sqrt": psd_sqrt(cov), "cov_trace": tf.linalg.trace(cov)}

    moments = ("sum", "outer")

    def prepare(self, features):
        mean, cov = feature_moments(features)
        return {"dtype": features.dtype, "mean": tf.cast(mean, tf.float64),
                "cov": tf.cast(cov, tf.float64)}

    def from_moments(self, sums, count):
        mean, cov = _moment_mean_cov(sums, count)
        return {"dtype": tf.float64, "mean": mean, "cov": cov}

    def target_from_moments(self, sums, count):
        mean, cov = _moment_mean_cov(sums, count)
        return {"mean": mean, "cov_sqrt": psd_sqrt(cov), "cov_trace": tf.linalg.trace(cov)}

    def compare(self, moments, stats):
        loss = _w2_from_moments(moments["mean"], moments["cov"], stats["mean"],
                                stats["cov_sqrt"], stats["cov_trace"])
        return tf.cast(loss, moments["dtype"])


class MeanStdStyleLoss(StyleLoss):
    """Per-channel mean and std matching (:func:`mean_std_loss`), the statistics AdaIN uses."""

    name = "mean_std"

    def __init__(self, eps=1e-5):
        self.eps = eps

    moments = ("sum", "squares")

    def target(self, features):
        mean, std = channel_mean_std(features, self.eps)
        return {"mean": mean, "std": std}

    prepare = target

    def from_moments(self, sums, count):
        mean = tf.cast(sums["sum"], tf.float64) / count
        var = tf.cast(sums["squares"], tf.float64) / count - tf.square(mean)
        return {"mean": mean, "std": tf.sqrt(tf.maximum(var, 0.0) + self.eps)}

    def target_from_moments(self, sums, count):
        return {k: tf.cast(v, tf.float32) for k, v in self.from_moments(sums, count).items()}

    def compare(self, image_stats, stats):
        dtype = image_stats["mean"].dtype
        return (tf.reduce_mean(tf.math.squared_difference(image_stats["mean"],
                                                          tf.cast(stats["mean"], dtype)))
                + tf.reduce_mean(tf.math.squared_difference(image_stats["std"],
                                                            tf.cast(stats["std"], dtype))))

    def __repr__(self):
        return f"{type(self).__name__}(eps={self.eps})"


#: Style losses by name. Values are ready-to-use instances with default settings.
STYLE_LOSSES = {
    "gram": GramStyleLoss(),
    "sliced_wasserstein": SlicedWassersteinStyleLoss(),
    "gaussian_w2": GaussianW2StyleLoss(),
    "mean_std": MeanStdStyleLoss(),
}


def get_style_loss(style_loss):
    """A :class:`StyleLoss` from a name in :data:`STYLE_LOSSES` or an instance (returned as is)."""
    from nst_tf.errors import ConfigError

    if isinstance(style_loss, StyleLoss):
        return style_loss
    if isinstance(style_loss, str) and style_loss in STYLE_LOSSES:
        return STYLE_LOSSES[style_loss]
    raise ConfigError(f"unknown style loss {style_loss!r}; choose one of {sorted(STYLE_LOSSES)} "
                      "or pass a nst_tf.losses.StyleLoss instance")

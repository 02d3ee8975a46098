"""Gatys by tiles, exact: the global objective of an image too large for memory, tile by tile.

:class:`TiledObjective` wraps a :class:`~nst_tf.objective.StyleObjective` and returns the same loss
and gradient as the whole-image objective (to float32 round-off) while the backbone only ever sees
one tile at a time:

1. **Grid** (:class:`nst_tf.grid.Grid`, the tile geometry shared with feed-forward patches).
   Tile *cores* partition the image; core origins are multiples of the deepest stride ``S`` of the
   layers used (16 for VGG up to relu5_1), so every layer's feature map is partitioned too: the core ``[y0, y1)`` owns feature rows ``[y0/s, y1/s)`` of a layer with
   stride ``s`` (the last row and column of cores run to the layer's end). A tile is its core plus
   a *halo* on each side, clipped at the image border (never padded: the backbone's own zero
   padding then reproduces the whole image's border). The halo is computed from the backbone's
   layers (:mod:`nst_tf.receptive_field`): the largest distance between a core feature's receptive
   field and its own stride cell, rounded up to a multiple of ``S`` — 80 px for VGG19's default
   layers (receptive field 156 px at relu5_1).
2. **Pass A** (forward only, tile by tile): the sums over core pixels of each style layer's
   features that the style loss needs (:data:`nst_tf.losses.MOMENTS`: ΣF, ΣFᵀF, ΣF²), accumulated
   in float64. With ``N_l`` the full layer's pixel count, ``style_loss.from_moments`` turns them
   into the statistics of the whole image (Gram ``ΣFᵀF/N``, means, covariances...).
3. **Adjoint**, on the small statistics only: the style loss as a function of the sums, through
   the objective's own blending and layer weights
   (:meth:`~nst_tf.objective.StyleObjective.style_part_from_stats`), differentiated with a
   ``GradientTape``: ``A = ∂L_style/∂sums``. Every
   moment-based style loss and any blend of styles goes through this one path.
4. **Pass B** (forward + backward, tile by tile): the gradient of the surrogate
   ``Σ_l ⟨A_l, sums_l(core features)⟩ + content loss on the core`` with respect to the tile,
   seeded only at core features, added into a full-size gradient buffer (overlap-add). Since
   every core feature is computed exactly inside its tile, the sum over tiles is the exact
   gradient. Content targets are computed by tiles once and stored per tile.
5. Total variation and ``extra_terms`` are cheap per-pixel terms: evaluated on the whole image.

Each tile kind (shape and crop offsets: interior, edges, corners, at most about nine) has one
compiled function per pass, reused for every tile, step, video frame and content image of that
kind; tiles run one after the other, so peak memory is one tile's forward + backward plus the
full-size buffers. L-BFGS gets a consistent loss and gradient (both exact), so its line search
works as untiled. Sliced Wasserstein sorts all pixels of a layer and is not a function of sums:
it raises :class:`~nst_tf.errors.ConfigError`.

Memory (:func:`estimate_bytes`, :func:`plan_tile_size`): ``fixed + pixels · per_pixel + tile
pixels · per_tile_pixel``. ``per_tile_pixel`` is ``ACTIVATION_FACTOR × 4 bytes ×`` the floats of
every backbone layer output per input pixel (read from the model, 326 for VGG19 to relu5_1);
``per_pixel`` counts the full-size vectors: the optimizer's (L-BFGS ``2m + 4`` images, Adam 3),
the gradient buffer, image copies and the stored content features. ``ACTIVATION_FACTOR`` and
``FIXED_BYTES`` were fitted to peak RSS measured by ``benchmarks/high_resolution.py``.

Example:
    >>> import numpy as np
    >>> from nst_tf.features import FeatureExtractor
    >>> from nst_tf.objective import StyleObjective
    >>> ex = FeatureExtractor("vgg19", ["conv1_1", "conv2_1"], weights=None)
    >>> rng = np.random.default_rng(0)
    >>> content, style = rng.random((2, 1, 70, 90, 3), np.float32)
    >>> objective = StyleObjective(ex, content, [style], content_layers=["conv2_1"],
    ...                            style_layers=["conv1_1", "conv2_1"])
    >>> tiled = TiledObjective(objective, tile_size=32)
    >>> tiled.grid.rows, tiled.grid.cols, tiled.halo
    (3, 3, 4)
    >>> loss, parts, grad = tiled.value_and_gradient(content)
    >>> bool(abs(float(loss) - float(objective(content)[0])) < 1e-4 * float(loss))
    True
"""

import collections
import contextlib
import logging
import math
import os
import re
import time

import numpy as np

from nst_tf.errors import ConfigError
from nst_tf.grid import Grid

__all__ = ["TiledObjective", "halo_for", "parse_memory", "estimate_bytes", "plan_tile_size",
           "default_max_memory", "ACTIVATION_FACTOR", "FIXED_BYTES"]

#: Peak bytes of one forward + backward pass ≈ this × 4 bytes × the backbone's activation floats
#: per pixel (:func:`nst_tf.receptive_field.activation_floats_per_pixel`). Fitted to the peak RSS
#: of untiled and tiled runs in ``benchmarks/high_resolution.py`` (see the README's table).
ACTIVATION_FACTOR = 1.6
#: Resident bytes besides images and activations: Python, TensorFlow, the backbone's weights.
FIXED_BYTES = 0.8e9


def halo_for(extractor, layers):
    """``(halo, stride)`` for exact tiles over ``layers`` of ``extractor``'s model.

    ``stride`` is the least common multiple of the layers' strides (rows and columns); ``halo``
    the largest number of input pixels a core feature's receptive field reaches beyond its own
    stride cell, on any side, rounded up to a multiple of ``stride``.

    >>> from nst_tf.features import FeatureExtractor
    >>> halo_for(FeatureExtractor("vgg19", weights=None), ["block5_conv1", "block4_conv2"])
    (80, 16)
    """
    halo, stride, _ = _tile_geometry(extractor, layers)
    return halo, stride


def _tile_geometry(extractor, layers):
    """``(halo, stride, {layer: (row jump, column jump)})``."""
    from nst_tf.receptive_field import common_stride, output_geometry

    geometry = output_geometry(extractor.model)
    used = [geometry[l] for l in layers]
    rows, cols = common_stride(used)
    stride = rows * cols // math.gcd(rows, cols)
    reach = max(max(axis.halo_before, axis.halo_after) for g in used for axis in g)
    jumps = {l: (geometry[l][0].jump, geometry[l][1].jump) for l in layers}
    return stride * math.ceil(reach / stride), stride, jumps


# --- memory ---------------------------------------------------------------------------------

#: Memory units (case-insensitive): decimal ``KB`` … ``PB`` (powers of 1000) and binary
#: ``KiB`` … ``PiB`` (powers of 1024); no unit or ``B`` is bytes.
_UNITS = {"": 1, "b": 1,
          **{f"{p}b": 1000 ** k for k, p in enumerate("kmgtp", 1)},
          **{f"{p}ib": 1024 ** k for k, p in enumerate("kmgtp", 1)}}


def parse_memory(value):
    """Bytes from ``20e9``, ``"20GB"`` (10⁹), ``"20GiB"`` (2³⁰), ``"512 MB"``, ``"1.5tb"``...
    (units: B, KB, MB, GB, TB, PB and KiB … PiB, in any case).

    >>> parse_memory("20GB"), parse_memory("1.5 GiB"), parse_memory(1000), parse_memory("2pb")
    (20000000000.0, 1610612736.0, 1000.0, 2000000000000000.0)

    Raises:
        ConfigError: not a size, not a finite number of bytes (``1e400GB``), or not positive.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise ConfigError(f"max_memory must be a size such as 20GB, 16GiB or 512MB (units "
                              f"B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB), got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = number * _UNITS[unit]
    if not math.isfinite(size):
        raise ConfigError(f"max_memory {value!r} is not a finite number of bytes")
    if size <= 0:
        raise ConfigError(f"max_memory must be positive, got {value!r}")
    return size


def default_max_memory():
    """80 % of the physical memory (the budget ``tile_size="auto"`` uses without ``max_memory``)."""
    try:
        return 0.8 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16e9


def image_vectors(optimizer="lbfgs", memory=10):
    """Full-size float32 images alive at the peak of a run: the optimizer's state (L-BFGS:
    trial, x, g, p and 2·m history; Adam: trial, m, v) plus 18 more (the gradient and its
    buffer, the update's temporaries, the content and style images and their copies, freed
    memory the allocator keeps) — the 18 were fitted to measured peaks."""
    state = 4 + 2 * int(memory) if optimizer == "lbfgs" else 3
    return state + 18


def estimate_bytes(extractor, content_layers, height, width, channels=3, tile_pixels=None,
                   optimizer="lbfgs", memory=10):
    """Predicted peak resident bytes of an optimization (whole image, or tiles of
    ``tile_pixels`` pixels each): ``FIXED_BYTES + H·W·(vectors + content features) + pixels of
    one pass · ACTIVATION_FACTOR · 4 · activation floats``."""
    from nst_tf.receptive_field import activation_floats_per_pixel, output_geometry

    pixels = height * width
    geometry = output_geometry(extractor.model)
    content = sum(_channels(extractor, l) / (geometry[l][0].jump * geometry[l][1].jump)
                  for l in content_layers)
    per_pixel = 4 * (channels * image_vectors(optimizer, memory) + content)
    per_pass = ACTIVATION_FACTOR * 4 * activation_floats_per_pixel(extractor.model)
    return FIXED_BYTES + pixels * per_pixel + (tile_pixels or pixels) * per_pass


def _channels(extractor, layer):
    return int(extractor.model.output[layer].shape[-1])


def plan_tile_size(extractor, layers, content_layers, height, width, max_memory, channels=3,
                   optimizer="lbfgs", memory=10, largest=2048):
    """The core size ``tile_size="auto"`` uses: None when the whole image fits ``max_memory``
    (bytes), else the largest multiple of the stride (at most ``largest``) whose tiles fit.

    Raises:
        ConfigError: not even the smallest tile fits (the full-size buffers alone are too
            big); the message gives the estimate and what to change.
    """
    args = dict(channels=channels, optimizer=optimizer, memory=memory)
    if estimate_bytes(extractor, content_layers, height, width, **args) <= max_memory:
        return None
    halo, stride = halo_for(extractor, layers)
    core = stride * (min(largest, max(height, width)) // stride)
    while core >= stride:
        tile = min(height, core + 2 * halo) * min(width, core + 2 * halo)
        if estimate_bytes(extractor, content_layers, height, width, tile_pixels=tile,
                          **args) <= max_memory:
            return core
        core -= stride
    need = estimate_bytes(extractor, content_layers, height, width, tile_pixels=(stride + 2 * halo)
                          ** 2, **args)
    raise ConfigError(
        f"a {width}x{height} image needs about {need / 1e9:.1f} GB even with the smallest tiles "
        f"(max_memory is {max_memory / 1e9:.1f} GB): the full-size buffers do not fit. Raise "
        "max_memory (--max_memory), use a shorter L-BFGS history (lbfgs_memory, "
        "--lbfgs_memory) or Adam (optimizer='adam', --optimizer=adam)")


# --- the tiled objective ----------------------------------------------------------------------

@contextlib.contextmanager
def _tracing_quietly():
    """Each tile kind has its own compiled functions, made from the same Python code: TF's
    "excessive retracing" warning would fire on the first pass over the tiles. Silence it."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tile_slice(box):
    ty0, ty1, tx0, tx1 = box
    return (slice(None), slice(ty0, ty1), slice(tx0, tx1), slice(None))


def _crop(features, crop):
    r0, r1, c0, c1 = crop
    return features[:, r0:r1, c0:c1, :]


class TiledObjective:
    """The exact loss and gradient of a :class:`~nst_tf.objective.StyleObjective`, by tiles.

    Args:
        objective: the whole-image objective (its content image, styles, weights, layers, style
            loss and extra terms define the loss). Its whole-image content targets are never
            computed.
        tile_size: the core side in pixels, a multiple of the deepest stride of the layers used.
        halo: pixels each tile reads beyond its core; None: :func:`halo_for` (exact). A smaller
            halo gives a wrong gradient (it exists for tests).
        shape: ``(H, W)`` of the optimized image; default: the content image's.
        transform: ``f(image) -> RGB image`` applied before the backbone (the grey image of
            ``preserve_color="luminance_only"`` repeated to three channels); TF ops, per pixel.
        jit_compile: ``"auto"`` (XLA on GPU/TPU), True or False, for the tile functions.

    Attributes:
        grid: the :class:`~nst_tf.grid.Grid`. seconds: accumulated wall time per pass (``pass_a``,
        ``adjoint``, ``pass_b``, ``full_image``, ``content_targets``). evaluations: calls of
        :meth:`value_and_gradient`.

    Raises:
        ConfigError: a style loss that is not a function of feature sums (sliced
            Wasserstein), a tile size that is not a multiple of the stride, a missing shape.
    """

    def __init__(self, objective, tile_size, *, halo=None, shape=None, transform=None,
                 jit_compile="auto"):
        from nst_tf.device import resolve_jit_compile

        loss = objective.style_loss
        if objective.style_layers and not loss.moments:
            raise ConfigError(
                f"style_loss {loss.name!r} cannot be tiled exactly: it sorts all pixels of a "
                "layer, which is not a sum over tiles. Use tile_size=None (whole image), or a "
                "style loss made of feature sums: 'gram', 'mean_std' or 'gaussian_w2'")
        if shape is None:
            if objective.content_image is None:
                raise ConfigError("TiledObjective needs shape=(height, width) when the "
                                  "objective has no content image")
            shape = objective.content_image.shape[1:3]
        self.objective = objective
        self.extractor = objective.extractor
        self.transform = transform
        self._jit = resolve_jit_compile(jit_compile)
        self.height, self.width = (int(v) for v in shape)
        layers = list(dict.fromkeys(list(objective.content_layers) +
                                    list(objective.style_layers)))
        needed, self.stride, self._jumps = _tile_geometry(self.extractor, layers)
        self.halo = needed if halo is None else halo
        self.grid = Grid(self.height, self.width, tile_size, self.halo, self.stride)
        self._layers = layers
        self._full_sizes = self._layer_sizes((self.height, self.width))
        self._size_cache = {}
        self._functions = {}
        self._compiled = {}
        self._content_crops = None
        self._gradient = None
        self._full_terms = None
        self._adjoint_fn = None
        self.seconds = collections.Counter()
        self.evaluations = 0

    # --- geometry ---------------------------------------------------------------------------

    def _layer_sizes(self, shape):
        """``{layer: (h, w)}`` of the backbone's outputs for an input of ``shape``."""
        import keras

        spec = self.extractor.model.compute_output_spec(keras.KerasTensor((1, *shape, 3)))
        return {l: tuple(int(d) for d in spec[l].shape[1:3]) for l in self._layers}

    def _crops(self, tile):
        """``{layer: (r0, r1, c0, c1)}``: the tile's core in each layer, in tile coordinates."""
        if tile.shape not in self._size_cache:
            self._size_cache[tile.shape] = self._layer_sizes(tile.shape)
        sizes = self._size_cache[tile.shape]
        y0, y1, x0, x1 = tile.core
        ty0, _, tx0, _ = tile.box
        crops = {}
        for layer in self._layers:
            jump_r, jump_c = self._jumps[layer]
            h, w = sizes[layer]
            r0, c0 = (y0 - ty0) // jump_r, (x0 - tx0) // jump_c
            r1 = h if tile.last_row else (y1 - ty0) // jump_r
            c1 = w if tile.last_col else (x1 - tx0) // jump_c
            crops[layer] = (r0, r1, c0, c1)
        return crops

    # --- compiled per tile kind -------------------------------------------------------------

    def _function(self, name, tile, build):
        """The compiled ``name`` function for ``tile``'s kind (shape + crops), built once."""
        crops = self._crops(tile)
        key = (name, tile.shape, tuple(crops[l] for l in self._layers))
        if key not in self._functions:
            function = build(crops)
            self._compiled.setdefault(key, []).append(function)
            self._functions[key] = lambda *args: _call_quietly(function, *args)
        return self._functions[key]

    def tracing_counts(self):
        """``{(pass, tile shape, crops): traces}``: TensorFlow's own trace counts of every
        function compiled for a tile kind, summed (1 each when every later tile, step and scale
        of a kind reused the first function, whether it was rebuilt or retraced)."""
        return {key: sum(f.experimental_get_tracing_count() for f in functions)
                for key, functions in self._compiled.items()}

    def _build_sums(self, crops, transform=None):
        import tensorflow as tf

        from nst_tf.losses import feature_sums

        moments = self.objective.style_loss.moments
        style_layers = list(self.objective.style_layers)

        @tf.function(jit_compile=self._jit)
        def sums(tile):
            feats = self.extractor(transform(tile) if transform is not None else tile)
            return {l: {m: tf.cast(v, tf.float64) for m, v in
                        feature_sums(_crop(feats[l], crops[l]), moments).items()}
                    for l in style_layers}

        return sums

    def _build_content_crops(self, crops):
        import tensorflow as tf

        layers = list(self.objective.content_layers)

        @tf.function(jit_compile=self._jit)
        def content(tile):
            feats = self.extractor(tile)
            return {l: _crop(feats[l], crops[l]) for l in layers}

        return content

    def _build_backward(self, crops):
        import tensorflow as tf

        objective = self.objective
        sizes = self._full_sizes
        transform = self.transform

        @tf.function(jit_compile=self._jit)
        def backward(tile, adjoints, content_targets):
            with tf.GradientTape() as tape:
                tape.watch(tile)
                feats = self.extractor(transform(tile) if transform is not None else tile)
                surrogate = tf.constant(0.0)
                for layer in objective.style_layers:
                    surrogate += _moment_surrogate(_crop(feats[layer], crops[layer]),
                                                   adjoints[layer])
                content = tf.constant(0.0)
                for layer, weight in objective.content_layers.items():
                    diff = _crop(feats[layer], crops[layer]) - content_targets[layer]
                    count = float(sizes[layer][0] * sizes[layer][1] * diff.shape[-1])
                    content += (weight / count) * tf.reduce_sum(tf.square(diff))
                content = objective.content_weight * content
                total = surrogate + content
            return content, tape.gradient(total, tile)

        return backward

    # --- targets ----------------------------------------------------------------------------

    def content_crops(self):
        """Per tile ``{content layer: core features of the content image}`` (computed once)."""
        import tensorflow as tf

        if self._content_crops is None:
            start = time.perf_counter()
            crops = []
            image = self.objective.content_image
            for tile in self.grid.tiles:
                if image is None or not self.objective.content_layers:
                    crops.append({})
                    continue
                fn = self._function("content", tile, self._build_content_crops)
                crops.append(fn(tf.constant(image[_tile_slice(tile.box)])))
            self._content_crops = crops
            self.seconds["content_targets"] += time.perf_counter() - start
        return self._content_crops

    def style_targets(self):
        """The objective's style targets; style images larger than one tile are measured by
        tiles (their sums, then ``style_loss.target_from_moments``), never whole."""
        objective = self.objective
        if objective._style_targets is None and any(
                s.shape[1] * s.shape[2] > self.grid.max_tile_pixels
                for s in objective.style_images):
            objective.style_targets = [self._tiled_style_target(s) for s in objective.style_images]
        return objective.style_targets

    def _tiled_style_target(self, style):
        import tensorflow as tf

        height, width = style.shape[1:3]
        grid = Grid(height, width, self.grid.core, self.halo, self.stride)
        sums = self._pass_a(tf.constant(style), grid, "style_sums", None)
        sizes = self._layer_sizes((height, width))
        loss = self.objective.style_loss
        return {l: loss.target_from_moments(sums[l], float(np.prod(sizes[l])))
                for l in self.objective.style_layers}

    def retarget(self, content_image=None, extra_terms=None):
        """Like :meth:`~nst_tf.objective.StyleObjective.retarget`; the tiles' content targets
        are recomputed."""
        if not self.objective.retarget(content_image, extra_terms):
            return False
        if content_image is not None:
            self._content_crops = None
        return True

    # --- the loss -----------------------------------------------------------------------------

    def _pass_a(self, image, grid=None, name="sums", transform="own"):
        """``{layer: {moment: float64 sum over the whole image}}``, one tile at a time."""
        grid = self.grid if grid is None else grid
        transform = self.transform if transform == "own" else transform
        totals = None
        for tile in grid.tiles:
            fn = self._function(name, tile, lambda crops: self._build_sums(crops, transform))
            sums = fn(image[_tile_slice(tile.box)])
            totals = sums if totals is None else {
                l: {m: totals[l][m] + v for m, v in sums[l].items()} for l in sums}
        return totals

    def _adjoint(self, sums, style_targets):
        import tensorflow as tf

        if self._adjoint_fn is None:
            objective = self.objective
            counts = {l: float(np.prod(self._full_sizes[l])) for l in objective.style_layers}

            @tf.function
            def adjoint(sums, targets):
                with tf.GradientTape() as tape:
                    tape.watch(sums)
                    prepared = {l: objective.style_loss.from_moments(sums[l], counts[l])
                                for l in objective.style_layers}
                    value = objective.style_weight * objective.style_part_from_stats(
                        prepared, targets, tf.float64)
                grads = tape.gradient(value, sums, unconnected_gradients="zero")
                return value, tf.nest.map_structure(lambda g: tf.cast(g, tf.float32), grads)

            self._adjoint_fn = adjoint
        return self._adjoint_fn(sums, style_targets)

    def _full_image_terms(self, image, inputs):
        """TV and extra terms on the whole image: ``(values, gradient)``, one trace."""
        import tensorflow as tf

        from nst_tf import losses

        if self._full_terms is None:
            objective = self.objective

            @tf.function
            def terms(image, inputs):
                with tf.GradientTape() as tape:
                    tape.watch(image)
                    rgb = self.transform(image) if self.transform is not None else image
                    parts = {"tv": objective.tv_weight * losses.total_variation_loss(
                        rgb, objective.tv_kind)}
                    parts.update(objective.extra_parts(rgb, inputs))
                    total = tf.add_n(list(parts.values()))
                return parts, tape.gradient(total, image)

            self._full_terms = terms
        return self._full_terms(image, inputs)

    def value_and_gradient(self, image):
        """``(total, parts, gradient)`` of the whole-image objective at ``image``
        ``[1, H, W, C]``, computed tile by tile; ``parts`` has ``content``, ``style``, ``tv``
        and the extra terms, as :class:`~nst_tf.objective.StyleObjective` reports them."""
        import tensorflow as tf

        image = tf.convert_to_tensor(image, tf.float32)
        objective = self.objective
        clock = time.perf_counter
        content_crops = self.content_crops()
        style_targets = self.style_targets()
        start = clock()
        adjoints, style = {}, tf.constant(0.0, tf.float64)
        if objective.style_layers:
            sums = self._pass_a(image)
            self.seconds["pass_a"] += clock() - start
            start = clock()
            style, adjoints = self._adjoint(sums, style_targets)
            style.numpy()
            self.seconds["adjoint"] += clock() - start
            start = clock()
        if self._gradient is None:
            self._gradient = tf.Variable(tf.zeros_like(image), trainable=False)
        self._gradient.assign(tf.zeros_like(image))
        content = tf.constant(0.0)
        for tile, targets in zip(self.grid.tiles, content_crops):
            fn = self._function("backward", tile, self._build_backward)
            value, grad = fn(image[_tile_slice(tile.box)], adjoints, targets)
            index = _tile_slice(tile.box)
            self._gradient[index].assign(self._gradient[index] + grad)
            content += value
        content.numpy()
        self.seconds["pass_b"] += clock() - start
        start = clock()
        full_parts, full_grad = self._full_image_terms(image, objective.term_inputs())
        gradient = self._gradient + full_grad
        parts = {"content": content, "style": tf.cast(style, tf.float32), **full_parts}
        total = tf.add_n(list(parts.values()))
        total.numpy()
        self.seconds["full_image"] += clock() - start
        self.evaluations += 1
        return total, parts, gradient

    def __call__(self, image):
        """``(total, parts)`` (the gradient is computed too: use :meth:`value_and_gradient`)."""
        total, parts, _ = self.value_and_gradient(image)
        return total, parts

    def __repr__(self):
        return f"TiledObjective({self.grid!r}, stride={self.stride})"


def _call_quietly(function, *args):
    """Call a tile function; its first call traces (quietly, see :func:`_tracing_quietly`)."""
    if function.experimental_get_tracing_count():
        return function(*args)
    with _tracing_quietly():
        return function(*args)


def _moment_surrogate(features, adjoint):
    """``Σ ⟨adjoint[m], sums[m](features)⟩`` over the moments in ``adjoint`` (float32); the
    ``outer`` term has a one-matmul gradient ``2·F·A_sym`` that reuses its forward product."""
    import tensorflow as tf

    flat = tf.reshape(features, [-1, features.shape[-1]])
    total = tf.constant(0.0)
    if "sum" in adjoint:
        total += tf.reduce_sum(tf.reduce_sum(flat, axis=0) * adjoint["sum"][0])
    if "squares" in adjoint:
        total += tf.reduce_sum(tf.reduce_sum(tf.square(flat), axis=0) * adjoint["squares"][0])
    if "outer" in adjoint:
        a = adjoint["outer"][0]
        total += _quadratic(flat, 0.5 * (a + tf.transpose(a)))
    return total


def _quadratic(flat, symmetric):
    """``Σ_n f_nᵀ A f_n = ⟨A, FᵀF⟩`` for symmetric ``A``, gradient ``2·F·A``."""
    import tensorflow as tf

    @tf.custom_gradient
    def quadratic(flat):
        product = tf.matmul(flat, symmetric)

        def grad(upstream):
            return 2.0 * upstream * product

        return tf.reduce_sum(product * flat), grad

    return quadratic(flat)

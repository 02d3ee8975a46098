"""Feed-forward stylization of very large images by patches, without seams.

A network with instance normalization cannot simply run on tiles: each tile would be
normalized with its own mean and variance, and neighbouring tiles would differ in tone and
contrast (visible seams). Here every patch is normalized with the *same* statistics, taken from
one of two sources through the record/replay point of :mod:`nst_tf.norm_statistics`:

* ``statistics="thumbnail"`` (Chen et al. 2022, "Towards Ultra-Resolution Neural Style
  Transfer via Thumbnail Instance Normalization", URST): one pass over a copy of the image whose
  longest side is ``thumbnail_size`` (1024) records every normalization's statistics; the patches
  reuse them. One extra small pass; the output differs from whole-image inference by the
  thumbnail approximation (a thumbnail equal to the image gives the whole-image output).
* ``statistics="exact"``: for each normalization, in depth order, one pass over the patches
  measures it on every patch core (the earlier ones replayed) and sums the parts in float64
  (:class:`~nst_tf.norm_statistics.Accumulator`), so the patches see the whole image's own
  statistics and the output equals whole-image inference. K normalizations cost K passes over
  growing prefixes of the network (about K/2 forward passes more than "thumbnail").
* ``statistics="patch"``: each patch's own statistics (naive tiling, with seams; for
  comparison only).

Patches are the tiles of :class:`nst_tf.grid.Grid` (the tile geometry exact tiled Gatys uses
too): *cores* ``tile_size`` pixels wide (a multiple of the network's stride) surrounded by a
*halo* from the network's receptive field (:mod:`nst_tf.receptive_field`), both computed from
the model's layers and clipped at the image border. With fixed statistics the
network is local, so each core's output equals the whole image's: cores are cropped and
placed, no blending. The output goes into ``sink`` (by default a float32 array; for very large
images a uint8 memory map on disk, see :func:`stylize_to_file`), so only one patch is in memory
at a time besides the image and the output.

Example:
    >>> import numpy as np, nst_tf
    >>> from nst_tf.networks import johnson_network
    >>> net, photo = johnson_network(alpha=0.25), np.random.rand(150, 130, 3).astype("float32")
    >>> whole = nst_tf.stylize(photo, model=net, crop=True)
    >>> tiled = nst_tf.stylize(photo, model=net, crop=True, tile_size=64, statistics="exact")
    >>> float(np.abs(tiled - whole).max()) < 1e-5
    True
"""

import collections
import dataclasses
import math
import numbers
import os
import tempfile
from fractions import Fraction
from typing import Any, Callable, Optional

import numpy as np

from nst_tf.errors import ConfigError

#: The statistics modes of :func:`run` (see the module docstring).
STATISTICS = ("thumbnail", "exact", "patch")
#: Longest side of the thumbnail of ``statistics="thumbnail"`` (URST's default).
DEFAULT_THUMBNAIL_SIZE = 1024
_FUNCTION_CACHE_SIZE = 64
_functions = collections.OrderedDict()


@dataclasses.dataclass
class PatchModel:
    """How to run one output of a family's network on patches of one image.

    Attributes:
        image: the ``[H, W, 3]`` float32 image to cut into patches.
        body: ``body(patch [1, h, w, 3], *aligned, *extras) -> [1, h', w', 3]``, traceable by
            ``tf.function``; its normalizations go through :mod:`nst_tf.norm_statistics`.
        chain: ``((keras model, output index), ...)``: the layers ``body`` runs, for
            :func:`nst_tf.receptive_field.footprint`.
        extras: arrays ``body`` takes after the patch, the same for every patch (style weights,
            an embedding, AdaIN statistics...).
        key: hashable key under which the compiled functions of ``body`` are cached (None: not
            cached); equal keys must mean the same ``body``. Put the network object itself in
            it, not its ``id`` (the cache then keeps it alive and the key unique).
        jit_compile: XLA for the compiled functions.
        min_size: smallest side the network accepts (for the thumbnail).
        multiple: sides must be multiples of this (for the thumbnail).
        aligned: ``aligned(height, width) -> [(array [1, height / r, width / r, C], r), ...]``:
            per-pixel inputs aligned with an image of that size (a texture network's noise),
            cropped with each patch; None when there are none.
        crop: ``(H, W)`` to cut the output to, or None for the network's own output size.
    """

    image: np.ndarray
    body: Callable
    chain: tuple
    extras: tuple = ()
    key: Any = None
    jit_compile: bool = False
    min_size: int = 1
    multiple: int = 1
    aligned: Optional[Callable] = None
    crop: Optional[tuple] = None


# --- Options ---------------------------------------------------------------------------------

def _halo(halo, footprint):
    from nst_tf.grid import check_halo
    from nst_tf.receptive_field import minimal_halo

    return minimal_halo(footprint) if halo is None else check_halo(halo, footprint.stride)


def check_statistics(statistics, thumbnail_size):
    """Raise a :class:`~nst_tf.errors.ConfigError` unless ``statistics`` is one of
    :data:`STATISTICS` and ``thumbnail_size`` a positive int."""
    if statistics not in STATISTICS:
        raise ConfigError(f"statistics must be one of {', '.join(STATISTICS)}, got "
                          f"{statistics!r}")
    if isinstance(thumbnail_size, bool) or not isinstance(thumbnail_size, numbers.Integral) \
            or thumbnail_size < 1:
        raise ConfigError(f"thumbnail_size must be a positive number of pixels, got "
                          f"{thumbnail_size!r}")


# --- Compiled functions of a body, one per mode ------------------------------------------------

def _finish(output):
    import tensorflow as tf

    return tf.clip_by_value(tf.cast(output, tf.float32), 0.0, 1.0)


def _record(body, index, scale):        # -> (statistics, sizes) of every normalization
    from nst_tf import norm_statistics

    def run(image, aligned, extras):
        with norm_statistics.recording() as recorded:
            body(image, *aligned, *extras)
        return recorded.statistics, recorded.sizes
    return run


def _replay(body, index, scale):        # -> the output with the given statistics
    from nst_tf import norm_statistics

    def run(image, aligned, extras, statistics):
        with norm_statistics.replaying(statistics):
            return _finish(body(image, *aligned, *extras))
    return run


def _own(body, index, scale):           # -> the output with the patch's own statistics
    def run(image, aligned, extras):
        return _finish(body(image, *aligned, *extras))
    return run


def _measure(body, index, scale):       # -> (count, mean, M2) of normalization `index` on a core
    from nst_tf import norm_statistics

    def run(image, aligned, extras, statistics, box):
        with norm_statistics.measuring(statistics, index, box, scale) as measured:
            body(image, *aligned, *extras)
        return measured.partial
    return run


#: What a compiled function of a body does, by mode; crops with run-time bounds do not
#: compile with XLA, so "measure" runs without it.
_MODES = {"record": (_record, True), "replay": (_replay, True), "patch": (_own, True),
          "measure": (_measure, False)}


def _compiled(model, mode, index=None, scale=None):
    """The ``tf.function`` running ``model.body`` in ``mode`` (cached on ``model.key``)."""
    key = None if model.key is None else (model.key, mode, index, scale)
    if key is not None and key in _functions:
        _functions.move_to_end(key)
        return _functions[key]
    build, xla = _MODES[mode]
    function = _ShapePolymorphic(build(model.body, index, scale),
                                 jit_compile=model.jit_compile and xla)
    if key is not None:
        _functions[key] = function
        while len(_functions) > _FUNCTION_CACHE_SIZE:
            _functions.popitem(last=False)
    return function


class _ShapePolymorphic:
    """``tf.function(run)`` with an input signature taken from the first call, patch sizes left
    open: one trace serves every patch (and the thumbnail)."""

    def __init__(self, run, jit_compile):
        self.run, self.jit_compile, self.function = run, jit_compile, None

    def __call__(self, image, aligned, *rest):
        import tensorflow as tf

        if self.function is None:
            def spec(value, spatial=False):
                shape = list(np.shape(value))
                if spatial:
                    shape[1:3] = [None, None]
                return tf.TensorSpec(shape, tf.as_dtype(getattr(value, "dtype", np.float32)))
            signature = [spec(image, True), [spec(a, True) for a in aligned]]
            signature += tf.nest.map_structure(spec, list(rest))
            self.function = tf.function(self.run, input_signature=signature,
                                        jit_compile=self.jit_compile)
        return self.function(image, aligned, *rest)


# --- Statistics --------------------------------------------------------------------------------

def thumbnail_shape(height, width, thumbnail_size, min_size=1, multiple=1):
    """``(h, w)`` of the thumbnail: the longest side ``thumbnail_size`` (never larger than the
    image), each side at least ``min_size`` and a multiple of ``multiple``.

    Example:
        >>> thumbnail_shape(8000, 12000, 1024)
        (683, 1024)
        >>> thumbnail_shape(500, 400, 1024)
        (500, 400)
    """
    scale = min(1.0, thumbnail_size / max(height, width))
    low = -(-min_size // multiple) * multiple

    def side(n):
        if scale == 1.0:
            return n
        return max(low, int(round(n * scale / multiple)) * multiple)
    return side(height), side(width)


def _crop_aligned(aligned, box):
    top, bottom, left, right = box
    return [array[:, top // r:-(-bottom // r), left // r:-(-right // r)] for array, r in aligned]


def _thumbnail_statistics(model, thumbnail_size):
    from nst_tf import images

    height, width = model.image.shape[:2]
    if thumbnail_size < model.min_size:
        raise ConfigError(f"thumbnail_size={thumbnail_size} is smaller than the {model.min_size}"
                          " pixels this network needs")
    shape = thumbnail_shape(height, width, thumbnail_size, model.min_size, model.multiple)
    thumbnail = model.image if shape == (height, width) else images.resize(model.image, shape)
    aligned = [a for a, _ in model.aligned(*shape)] if model.aligned else []
    statistics, _ = _compiled(model, "record")(thumbnail[None], aligned, list(model.extras))
    return [tuple(np.asarray(t, np.float64) for t in triple) for triple in statistics]


def _scales(model, stride):
    """Input pixels per pixel of each normalized tensor, from a recording on a small probe."""
    import tensorflow as tf

    size = math.lcm(stride, model.multiple)
    size *= max(4, -(-model.min_size // size))
    aligned = [a for a, _ in model.aligned(size, size)] if model.aligned else []
    _, sizes = _compiled(model, "record")(tf.zeros([1, size, size, 3]), aligned,
                                          list(model.extras))
    scales = []
    for rows, cols in (s.numpy() for s in sizes):
        scale = Fraction(size, int(rows))
        if scale != Fraction(size, int(cols)):
            raise ConfigError("a normalized tensor has different scales along H and W; the "
                              "network cannot be tiled with exact statistics")
        scales.append((scale.numerator, scale.denominator))
    return scales


def _exact_statistics(model, grid, aligned, scales, progress):
    """Each normalization's statistics over the whole image, measured on the patch cores (one
    pass per normalization, in call order; ``scales`` from :func:`_scales`)."""
    from nst_tf.norm_statistics import Accumulator, combine

    far = 2 ** 30          # a core bottom / right "to the end of the tensor"
    statistics = []
    for index, scale in enumerate(scales):
        function = _compiled(model, "measure", index, scale)
        total = Accumulator()
        for tile in grid:
            (top, bottom, left, right), (y0, y1, x0, x1) = tile.core, tile.box
            box = np.array([top - y0, left - x0, far if tile.last_row else bottom - y0,
                            far if tile.last_col else right - x0], np.int32)
            count, mean, m2 = function(model.image[None, y0:y1, x0:x1],
                                       _crop_aligned(aligned, tile.box), list(model.extras),
                                       statistics, box)
            total.add(count.numpy(), mean.numpy(), m2.numpy())
            progress(f"statistics {index + 1}/{len(scales)}")
        statistics += combine([total])
    return statistics


# --- Running -----------------------------------------------------------------------------------

def _float_sink(height, width):
    return np.empty((height, width, 3), np.float32)


class Uint8Sink:
    """A uint8 image on disk (``np.memmap`` in ``folder``) that float patches are written into.

    ``sink = Uint8Sink(folder)``; ``sink(height, width)`` creates the map and returns the
    writable object; ``sink.array`` is the map. Call ``sink.close()`` to remove the file.
    """

    def __init__(self, folder=None, rounding="round"):
        self.folder, self.rounding = folder, rounding
        self.array, self.path = None, None

    def __call__(self, height, width):
        fd, self.path = tempfile.mkstemp(suffix=".u8", dir=self.folder)
        os.close(fd)
        self.array = np.memmap(self.path, np.uint8, "w+", shape=(height, width, 3))
        return self

    def __setitem__(self, index, values):
        from nst_tf.images import float_to_uint8

        self.array[index] = float_to_uint8(values, self.rounding)

    def close(self):
        """Unmap the array and remove its file."""
        self.array = None                       # the last reference: the map is unmapped
        if self.path is not None and os.path.exists(self.path):
            os.remove(self.path)
        self.path = None


class _Progress:
    """``progress(label)`` after each patch run: ``patch 7/102 (statistics 1/16)  0.4s/patch
    ETA 0:38`` on stderr (every pass over the patches counts)."""

    def __init__(self, total, enabled):
        from nst_tf.progress import ProgressLine

        self.line, self.total, self.done = ProgressLine(total, enabled=enabled), total, 0

    def __call__(self, label):
        from nst_tf.progress import format_duration

        seconds = self.line.advance()
        self.done += 1
        self.line.write(self.done, f"patch {self.done}/{self.total} ({label})  "
                                   f"{format_duration(seconds)}/patch"
                                   f"{self.line.eta(self.done, seconds)}")

    def close(self):
        self.line.close()


def run(model, tile_size, statistics="thumbnail", thumbnail_size=DEFAULT_THUMBNAIL_SIZE,
        halo=None, sink=None, progress=False):
    """Run ``model`` (a :class:`PatchModel`) patch by patch; returns what ``sink`` returned.

    Args:
        model: the network, body and image.
        tile_size: side of the patch cores in pixels, a multiple of the network's stride.
        statistics: ``"thumbnail"``, ``"exact"`` or ``"patch"`` (see the module docstring).
        thumbnail_size: longest side of the thumbnail (``"thumbnail"`` only).
        halo: pixels of context around each core; default: the smallest multiple of the stride
            that covers the receptive field (a smaller one is not exact).
        sink: ``sink(height, width)`` returns the object the output is written into with
            ``out[rows, cols] = float32 values`` (default: a new float32 array).
        progress: write a progress line per patch to stderr.

    Raises:
        ConfigError: a bad tile size, halo or statistics mode, or a network that cannot be
            tiled.
    """
    from nst_tf.receptive_field import footprint

    from nst_tf.grid import Grid

    check_statistics(statistics, thumbnail_size)
    fp = footprint(model.chain)
    height, width = model.image.shape[:2]
    grid = Grid(height, width, tile_size, _halo(halo, fp), fp.stride)
    aligned = model.aligned(height, width) if model.aligned else []
    extras = list(model.extras)
    sink = sink or _float_sink
    scales = _scales(model, fp.stride) if statistics == "exact" else []
    report = _Progress((len(scales) + 1) * len(grid), progress)
    try:
        if statistics == "thumbnail":
            stats = _thumbnail_statistics(model, thumbnail_size)
        elif statistics == "exact":
            stats = _exact_statistics(model, grid, aligned, scales, report)
        if statistics == "patch":
            function = _compiled(model, "patch")
            args = ()
        else:
            function, args = _compiled(model, "replay"), (stats,)
        out = None
        # The last patch first: its output's size gives the size of the whole output.
        for tile in grid.tiles[-1:] + grid.tiles[:-1]:
            (top, bottom, left, right), (y0, y1, x0, x1) = tile.core, tile.box
            result = function(model.image[None, y0:y1, x0:x1], _crop_aligned(aligned, tile.box),
                              extras, *args)[0].numpy()
            if out is None:
                out_h, out_w = y0 + result.shape[0], x0 + result.shape[1]
                if model.crop is not None:
                    out_h, out_w = min(out_h, model.crop[0]), min(out_w, model.crop[1])
                out = sink(out_h, out_w)
            rows = slice(top, out_h if tile.last_row else min(bottom, out_h))
            cols = slice(left, out_w if tile.last_col else min(right, out_w))
            out[rows, cols] = result[rows.start - y0:rows.stop - y0,
                                     cols.start - x0:cols.stop - x0]
            report("output")
    finally:
        report.close()
    return out


# --- Through the families ----------------------------------------------------------------------

def stylize(family, network, content, style, *, tile_size, statistics="thumbnail",
            thumbnail_size=DEFAULT_THUMBNAIL_SIZE, halo=None, progress=False, **options):
    """:func:`nst_tf.stylize` with ``tile_size``: the family's
    :meth:`~nst_tf.families.Family.patch_models`, run by patches, stacked with the family's
    output shapes (``[B,] [K,] H, W, 3``)."""
    from nst_tf import images

    check_statistics(statistics, thumbnail_size)
    batch, single = images.image_batch(content, what="content image")
    several, models = family.patch_models(network, batch, style, **options)
    result = np.stack([np.stack([run(model, tile_size, statistics, thumbnail_size, halo,
                                     progress=progress) for model in row]) for row in models])
    if not several:
        result = result[:, 0]
    return result[0] if single else result


def stylize_to_file(family, network, content, output, style, *, tile_size,
                    statistics="thumbnail", thumbnail_size=DEFAULT_THUMBNAIL_SIZE, halo=None,
                    rounding="round", progress=False, **options):
    """:func:`nst_tf.stylize_to_file` once the model is resolved to ``family`` and ``network``:
    one image by patches into a uint8 map on disk beside ``output``, then the file."""
    from nst_tf import images
    from nst_tf.io import check_output_dir

    check_statistics(statistics, thumbnail_size)
    folder = check_output_dir(output)
    batch, single = images.image_batch(content, what="content image")
    if not single:
        raise ConfigError(f"stylize_to_file takes one content image, got a batch of {len(batch)}")
    several, models = family.patch_models(network, batch, style, **options)
    if several or len(models[0]) != 1:
        raise ConfigError("stylize_to_file writes one image: give one style or one mixture")
    sink = Uint8Sink(folder, rounding)
    try:
        run(models[0][0], tile_size, statistics, thumbnail_size, halo, sink, progress)
        images.save_image(output, sink.array)
    finally:
        sink.close()
    return output


def seam_ratio(image, tile_size, offset=0):
    """Mean absolute jump across the patch borders of a tiled ``image`` ``[H, W, C]`` divided by
    the same across the lines halfway between them: about 1 without seams, above 1 with them.

    Borders are the rows and columns ``offset + k·tile_size`` (k ≥ 1) inside the image; the
    jump across row ``r`` is ``|x[r] − x[r − 1]|``.

    Example:
        >>> smooth = np.tile(np.linspace(0, 1, 64)[None, :, None], (64, 1, 3))
        >>> round(seam_ratio(smooth, 16), 6)
        1.0
    """
    image = np.asarray(image, np.float64)

    def jumps(lines, axis):
        lines = [r for r in lines if 0 < r < image.shape[axis]]
        before = np.take(image, [r - 1 for r in lines], axis=axis)
        return np.abs(np.take(image, lines, axis=axis) - before).ravel()

    height, width = image.shape[:2]
    borders = [jumps(range(offset + tile_size, n, tile_size), axis)
               for axis, n in ((0, height), (1, width))]
    half = tile_size // 2
    middles = [jumps(range(offset + half, n, tile_size), axis)
               for axis, n in ((0, height), (1, width))]
    border, middle = np.concatenate(borders), np.concatenate(middles)
    if not border.size or not middle.size:
        raise ConfigError(f"a {width}x{height} image has no patch border for tile_size "
                          f"{tile_size}")
    return float(border.mean() / max(middle.mean(), 1e-12))


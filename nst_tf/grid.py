"""Tile geometry: how a large image is split into cores and halos, and which tile sizes are valid.

Both ways of working on an image too large for memory cut it the same way, with this module:
exact tiled Gatys (:mod:`nst_tf.tiling`, tiles of a VGG backbone) and feed-forward stylization by
patches (:mod:`nst_tf.patches`). The rule:

* **Cores** partition the image into squares of ``tile_size`` pixels, row by row. ``tile_size`` is
  a positive whole number of pixels and a multiple of the network's ``stride`` (the deepest
  stride of the layers used), so every core starts on the coarsest pixel grid and every layer's
  feature map splits exactly at core borders. The last row and column of cores take the
  remainder; a partial core shorter than the halo joins the core before it (no sliver tiles,
  and with ``tile_size >= halo`` an axis has at most three tile sizes: first, interior, last).
* A **tile** (the box that runs) is its core plus a ``halo`` on each side (a multiple of the
  stride, from the network's receptive field: :mod:`nst_tf.receptive_field`), clipped at the
  image border, never padded.

:func:`check_tile_size` and :func:`parse_tile_size` (the command-line form) give the one error
message for a bad tile size, whichever program or function received it.

Example:
    >>> grid = Grid(150, 131, 48, 56, stride=4)
    >>> grid.rows, grid.cols, grid.tiles[0].core, grid.tiles[0].box
    (3, 2, (0, 48, 0, 48), (0, 104, 0, 104))
    >>> grid.tiles[-1].core          # the remainders (6 and 35 px) joined the last cores
    (96, 150, 48, 131)
    >>> check_tile_size(50, 16)
    Traceback (most recent call last):
    ...
    nst_tf.errors.ConfigError: tile_size=50 is not a multiple of 16, the stride of the network (tiles must start on its coarsest pixel grid); use 48 or 64
"""

import collections
import math
import numbers

from nst_tf.errors import ConfigError

__all__ = ["Tile", "Grid", "check_tile_size", "check_halo", "parse_tile_size"]


class Tile(collections.namedtuple("Tile", "core box last_row last_col")):
    """One tile: ``core = (top, bottom, left, right)`` it owns (its output, its share of the
    statistics), ``box`` the same for the pixels it reads (core plus halo, clipped at the
    border); ``last_row`` / ``last_col``: its core runs to the image's bottom / right edge (its
    feature crops then run to the layers' ends)."""

    __slots__ = ()

    @property
    def shape(self):
        """``(height, width)`` of the box."""
        top, bottom, left, right = self.box
        return bottom - top, right - left


class Grid:
    """The tiles of a ``height x width`` image: cores of ``core`` pixels, halos of ``halo``.

    Args:
        height, width: the image size in pixels.
        core: the core side (the tile size), a positive multiple of ``stride``.
        halo: pixels read beyond each core side, a multiple of ``stride`` (>= 0).
        stride: the network's stride.

    Raises:
        ConfigError: a core or halo that breaks the rule (:func:`check_tile_size`,
            :func:`check_halo`).
    """

    def __init__(self, height, width, core, halo, stride):
        self.core = check_tile_size(core, stride)
        self.halo = check_halo(halo, stride)
        self.height, self.width, self.stride = int(height), int(width), int(stride)
        rows = _spans(self.height, self.core, self.halo)
        cols = _spans(self.width, self.core, self.halo)
        self.rows, self.cols = len(rows), len(cols)
        self.tiles = []
        for i, (top, bottom) in enumerate(rows):
            for j, (left, right) in enumerate(cols):
                box = (max(0, top - self.halo), min(self.height, bottom + self.halo),
                       max(0, left - self.halo), min(self.width, right + self.halo))
                self.tiles.append(Tile((top, bottom, left, right), box, i == self.rows - 1,
                                       j == self.cols - 1))

    @property
    def overhead(self):
        """Σ tile pixels / image pixels (the extra work the halos cost)."""
        read = sum(h * w for h, w in (t.shape for t in self.tiles))
        return read / (self.height * self.width)

    @property
    def max_tile_pixels(self):
        return max(h * w for h, w in (t.shape for t in self.tiles))

    def __len__(self):
        return len(self.tiles)

    def __iter__(self):
        return iter(self.tiles)

    def __getitem__(self, index):
        return self.tiles[index]

    def __repr__(self):
        return (f"Grid({self.height}x{self.width}, core={self.core}, halo={self.halo}: "
                f"{self.rows}x{self.cols} tiles, overhead {self.overhead:.2f})")


def _spans(size, core, halo):
    """``[(start, end), ...]`` of the cores along one axis; the last one ends at ``size``."""
    count = max(1, math.ceil(size / core))
    if count > 1 and size % core and size % core < halo:     # a sliver: it joins the core before
        count -= 1
    return [(k * core, size if k == count - 1 else (k + 1) * core) for k in range(count)]


def _whole(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def _not_whole(value):
    return ConfigError(f"tile_size must be a positive whole number of pixels, got {value!r}")


def check_tile_size(tile_size, stride):
    """``tile_size`` as an int, after checking the rule: a positive whole number of pixels (an
    int, not ``24.0``) and a multiple of ``stride``; otherwise a one-line
    :class:`~nst_tf.errors.ConfigError` that suggests the nearest valid sizes.

    Example:
        >>> check_tile_size(512, 16)
        512
        >>> try:
        ...     check_tile_size(24.0, 4)
        ... except ConfigError as error:
        ...     print(error)
        tile_size must be a positive whole number of pixels, got 24.0
    """
    if not _whole(tile_size):
        raise _not_whole(tile_size)
    tile_size = int(tile_size)
    if tile_size % stride:
        down, up = tile_size // stride * stride, -(-tile_size // stride) * stride
        hint = f"{down} or {up}" if down else str(up)
        raise ConfigError(f"tile_size={tile_size} is not a multiple of {stride}, the stride of "
                          f"the network (tiles must start on its coarsest pixel grid); use "
                          f"{hint}")
    return tile_size


def check_halo(halo, stride):
    """``halo`` as an int after checking it is a multiple of ``stride`` (0 allowed)."""
    if isinstance(halo, bool) or not isinstance(halo, numbers.Integral) or halo < 0 \
            or halo % stride:
        raise ConfigError(f"halo must be a multiple of the network's stride {stride} (>= 0), "
                          f"got {halo!r}")
    return int(halo)


def parse_tile_size(value, words=()):
    """A tile size as a program's flag gives it: ``None`` (also ``"none"`` and ``""``), one of
    ``words`` (such as ``"auto"``, lower-cased), or a positive whole number of pixels (an int or
    its decimal digits). Anything else is the one-line error of :func:`check_tile_size`; the
    stride is checked later, once the network is known.

    Example:
        >>> parse_tile_size("256"), parse_tile_size("none"), parse_tile_size("Auto", ("auto",))
        (256, None, 'auto')
        >>> parse_tile_size("24.0")
        Traceback (most recent call last):
        ...
        nst_tf.errors.ConfigError: tile_size must be a positive whole number of pixels, got '24.0'
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("none", ""):
            return None
        if text.lower() in words:
            return text.lower()
        if text.isdigit() and text.isascii() and int(text) >= 1:
            return int(text)
        raise _not_whole(value)
    if not _whole(value):
        raise _not_whole(value)
    return int(value)

"""Plan a whole-dataset run without Beam or TensorFlow: names, style choice, recipes, manifest.

Everything a worker decides about one content image is a pure function of the run's settings and
the image's *relative path* (its path below the content root, with ``/`` separators):

* :func:`choose` — which style (an index into the sorted style pool) and which strength, from a
  SHA-256 of ``(seed, relative path)``: the same on every run, runner and number of workers, and
  independent of the order in which files are listed or read.
* :func:`output_name` — where the result goes: the relative path with its extension replaced.
* :class:`ManifestRow` — the line ``manifest.jsonl`` holds for it.

Example:
    >>> choose(0, "n01440764/n01440764_10026.JPEG", num_styles=79395)
    (4114, None)
    >>> choose(0, "cat.jpg", num_styles=5, strength=(0.5, 1.0))
    (4, 0.63149...)
    >>> output_name("train/n01440764/n01440764_10026.JPEG", "png")
    'train/n01440764/n01440764_10026.png'
"""

import dataclasses
import hashlib
import json
import numbers
import posixpath
import re
import typing

from nst_tf.errors import ConfigError

#: Output formats and their file extensions.
FORMATS = {"png": ".png", "jpeg": ".jpg"}
#: The manifest's file name, in the output folder.
MANIFEST = "manifest.jsonl"
_MAGIC = re.compile(r"[*?[]")


@dataclasses.dataclass(frozen=True)
class DatasetRecipe:
    """Settings of a published dataset, applied before any flag the user gives.

    Attributes:
        name: the ``--recipe`` name.
        model: the model it uses.
        content_size: content images' shorter side is resized to this (PIL bilinear, with
            torchvision ``Resize``'s size arithmetic); None keeps the size.
        crop_size: then centre-cropped to ``crop_size²`` (torchvision ``CenterCrop``);
            None: no crop.
        style_size: style images are centre-cropped to a square and shrunk to this side
            (Geirhos et al.'s ``crop_square_and_downsample``); None leaves them to the model.
        min_style_size: style images with a side below this are left out of the pool.
        strength: ``(low, high)`` strength range.
        format: ``"png"`` or ``"jpeg"``.
    """

    name: str
    model: str = None
    content_size: int = None
    crop_size: int = None
    style_size: int = None
    min_style_size: int = None
    strength: tuple = (1.0, 1.0)
    format: str = "png"


#: Known recipes. ``stylized-imagenet``: Geirhos et al. (ICLR 2019), ``preprocess_imagenet.py``
#: and ``preprocess_style_imgs.py``: content ``Resize(256)`` + ``CenterCrop(224)``; paintings of at
#: least 224 px per side, centre square crop, ``thumbnail(224)``; AdaIN with α = 1; PNG.
RECIPES = {
    "stylized-imagenet": DatasetRecipe("stylized-imagenet", model="adain", content_size=256,
                                       crop_size=224, style_size=224, min_style_size=224,
                                       strength=(1.0, 1.0), format="png"),
}


def recipe(name):
    """The :class:`DatasetRecipe` called ``name``; ConfigError naming the known ones."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; the recipes are {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


# --- Names ---------------------------------------------------------------------------------------

def join(folder, relpath):
    """``folder/relpath`` with ``/`` (local and object-store paths alike)."""
    return folder.rstrip("/") + "/" + relpath


def is_pattern(source):
    """True when ``source`` holds glob characters (``*``, ``?``, ``[``)."""
    return bool(_MAGIC.search(source))


def escape(path):
    """``path`` with its glob characters quoted (``*`` → ``[*]``, ``?`` → ``[?]``, ``[`` →
    ``[][]``), so that a folder named ``set[1]`` is matched literally. Beam's patterns have no
    other way to quote; ``[][]`` (the set of ``]`` and ``[``, where ``[[]`` would make Python
    warn of a nested set) also matches a ``]`` there, and callers keep only the paths below
    their root (:func:`below`).

    Example:
        >>> escape("/data/set[1]") + "/**"
        '/data/set[][]1]/**'
    """
    return _MAGIC.sub(lambda m: "[][]" if m.group(0) == "[" else f"[{m.group(0)}]", path)


def below(root, path):
    """True when ``path`` is inside the folder ``root`` (``/`` separators)."""
    root = root.replace("\\", "/").rstrip("/")
    return not root or path.replace("\\", "/").startswith(root + "/")


def pattern_variants(pattern):
    """The patterns Beam must match for ``pattern`` to mean what a shell's ``**`` means.

    Beam's ``**`` matches any characters, so ``photos/**/*.jpg`` needs a folder between
    ``photos/`` and the file name; in a shell (and Python's ``glob``) ``**/`` also matches no
    folder at all. Each ``**/`` is therefore tried with and without it. The patterns may match
    a file more than once; callers drop the repeats.

    Example:
        >>> pattern_variants("photos/**/*.jpg")
        ['photos/**/*.jpg', 'photos/*.jpg']
    """
    variants = [pattern]
    while True:
        more = [v[:i] + v[i + 3:] for v in variants
                for i in range(len(v)) if v.startswith("**/", i)]
        more = [v for v in dict.fromkeys(more) if v not in variants]
        if not more:
            return variants
        variants += more


def pattern_root(pattern):
    """The folder of a glob pattern above its first glob character: relative paths start there.

    Example:
        >>> pattern_root("gs://bucket/imagenet/train/*/*.JPEG")
        'gs://bucket/imagenet/train'
    """
    head = pattern[:_MAGIC.search(pattern).start()] if is_pattern(pattern) else pattern
    return head.rsplit("/", 1)[0] if "/" in head else ""


def relative_path(root, path):
    """``path`` below the folder ``root``, with ``/`` separators.

    Example:
        >>> relative_path("/data/train", "/data/train/cat/1.jpg")
        'cat/1.jpg'
    """
    if not below(root, path):
        raise ValueError(f"{path} is not inside {root}")
    root = root.replace("\\", "/").rstrip("/")
    path = path.replace("\\", "/")
    return path[len(root) + 1:] if root else path.lstrip("/")


def is_hidden(relpath):
    """True when a part of ``relpath`` starts with ``.`` (such files are not data and are
    skipped: ``.DS_Store``, editors' and our own temporary files)."""
    return any(part.startswith(".") for part in relpath.split("/"))


def output_name(relpath, format="png"):
    """The output's relative path: ``relpath`` with its extension replaced by ``format``'s."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return posixpath.splitext(relpath)[0] + FORMATS[format]


# --- Style and strength --------------------------------------------------------------------------

def parse_strength(strength):
    """``(low, high)`` from a number, a pair, or a string ``"s"`` / ``"lo,hi"``, each in [0, 1].

    Example:
        >>> parse_strength("0.5,1")
        (0.5, 1.0)
    """
    values = strength
    if isinstance(strength, str):
        try:
            values = [float(v) for v in strength.split(",")]
        except ValueError:
            raise ConfigError(f"strength must be a number or 'low,high', got {strength!r}") \
                from None
    elif isinstance(strength, numbers.Real):
        values = [strength]
    values = list(values)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                   and 0.0 <= v <= 1.0 for v in values) or values[0] > values[1]:
        raise ConfigError(f"strength must be a number in [0, 1] or a range 'low,high' with "
                          f"0 <= low <= high <= 1, got {strength!r}")
    return float(values[0]), float(values[1])


def choose(seed, relpath, num_styles=None, strength=None):
    """``(style index or None, strength or None)`` of one content image: a pure function of
    ``(seed, relpath)``.

    SHA-256 of ``"{seed}:{relpath}"``: its first 8 bytes (big-endian) modulo ``num_styles`` give
    the index (None when ``num_styles`` is None), its next 8 bytes ``u`` in [0, 1) give the
    strength ``low + (high - low)·u`` for ``strength=(low, high)`` (exactly ``low`` when they are
    equal; None when ``strength`` is None).
    """
    digest = hashlib.sha256(f"{seed}:{relpath}".encode("utf-8")).digest()
    index = None
    if num_styles is not None:
        if num_styles < 1:
            raise ConfigError("the style pool is empty")
        index = int.from_bytes(digest[:8], "big") % int(num_styles)
    value = None
    if strength is not None:
        low, high = strength
        u = int.from_bytes(digest[8:16], "big") / 2.0 ** 64
        value = low if low == high else low + (high - low) * u
    return index, value


class Job(typing.NamedTuple):
    """What happens to one content image: planned once, carried through the pipeline."""

    content: str          # relative path of the content image
    path: str             # its full path
    style: object         # style image relative path, style index, mixture or None
    style_path: str       # the style image's full path (style images only)
    strength: float       # None for models without a strength
    output: str           # relative path of the output

    def row(self, error=None):
        """The manifest row: ``ok`` (with the output) or ``failed`` with ``error``."""
        if error is None:
            return ManifestRow(self.content, self.style, self.strength, self.output, "ok")
        return ManifestRow(self.content, self.style, self.strength, None, "failed",
                           error if isinstance(error, str) else one_line(error))


# --- Manifest ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One line of ``manifest.jsonl``: a content image, its style and strength, its output.

    ``style`` is the style image's relative path, a style index, a mixture ``{index: weight}``
    or None; ``strength`` None for models without one; ``output`` None when ``status`` is
    ``"failed"``, and then ``error`` says why.
    """

    content: str
    style: object
    strength: float
    output: str
    status: str
    error: str = None

    def to_json(self):
        """The JSON line (keys in a fixed order, no trailing newline)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=False)

    def line(self):
        """``(content, JSON line)``: what :func:`manifest_text` sorts and joins (two strings
        are lighter to collect than a million rows)."""
        return self.content, self.to_json()

    @classmethod
    def from_json(cls, line):
        return cls(**json.loads(line))


def manifest_text(lines):
    """The manifest file's text from :meth:`ManifestRow.line` pairs: one line per content
    image, ordered by its path."""
    return "".join(line + "\n" for _, line in sorted(lines))


def one_line(error):
    """An exception as ``"Type: message"`` on one line (for the manifest and summaries)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclasses.dataclass
class Summary:
    """Counts of a run: ``total`` input files, ``ok`` (``written`` now + ``existing`` before)
    and ``failed``, with up to ten failed rows as examples, and the pipeline's counters
    (``styles_prepared``, ``styles_left_out``, ...) where the runner reports them."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    written: int = None
    existing: int = None
    examples: list = dataclasses.field(default_factory=list)
    counters: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, rows, written=None, counters=None):
        rows = list(rows)
        failed = [r for r in rows if r.status != "ok"]
        ok = len(rows) - len(failed)
        existing = None if written is None else max(0, ok - written)
        return cls(len(rows), ok, len(failed), written, existing,
                   sorted(failed, key=lambda r: r.content)[:10], dict(counters or {}))

    def line(self):
        """One line: ``"120 images: 118 ok (100 stylized now, 18 already there), 2 failed"``."""
        detail = "" if self.written is None else \
            f" ({self.written} stylized now, {self.existing} already there)"
        return f"{self.total} images: {self.ok} ok{detail}, {self.failed} failed"

"""The settings of one dataset run, checked once on the machine that builds the pipeline.

:func:`make_plan` turns what a user asks for (sources, model, recipe, flags) into a frozen
:class:`DatasetPlan` that every worker receives: folder roots and match patterns, the model's
family and what a content image takes from it (a style image, a style index, nothing), the
options for the family's :meth:`~nst_tf.families.Family.prepare_style` and
:meth:`~nst_tf.families.Family.stylize_batch`, and the preprocessing. Everything that can be
wrong with the request is a :class:`~nst_tf.errors.ConfigError` here, before a worker starts.

Paths may be local or any filesystem Beam knows (``gs://``, ``s3://``, ``hdfs://``): a folder
means every file below it (files and folders whose names start with ``.`` are skipped), a glob
(``*``, ``?``, ``[``; ``**`` crosses folders, and ``**/`` also matches no folder, as in a shell)
what it matches, with relative paths taken from the folder above its first glob character. A
file or folder that exists under the name given is taken as named, glob characters and all
(``set[1]/``).

Example:
    >>> plan = make_plan("photos/", "out/", model="adain", styles="paintings/",
    ...                  recipe="stylized-imagenet")                         # doctest: +SKIP
    >>> plan.content_size, plan.crop_size, plan.style_size                   # doctest: +SKIP
    (256, 224, 224)
"""

import ast
import dataclasses
import inspect
import numbers
import os

from nst_tf.errors import ConfigError
from nst_tf.io import check_keeps_inputs
from nst_tf.scale import dataset
from nst_tf.scale.dataset import join

#: Keyword options the pipeline itself passes (never taken from the user's options).
_RESERVED = ("strength", "crop")
#: Images with more pixels than this are failed rows, refused from their header before they are
#: decoded (an 8000x8000 PNG of 186 KB decodes to 768 MB of float32).
DEFAULT_MAX_PIXELS = 40_000_000


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """What every worker needs to know about a run (see :func:`make_plan`)."""

    content_root: str
    content_pattern: str              # Beam patterns: see content_patterns
    output: str
    model: str
    family: str
    style_input: str = None           # "image", "index" or None
    style_root: str = None            # "image": the style images' folder ...
    style_pattern: str = None         # ... and their pattern
    style_pool: tuple = ()            # "index": the style indices to choose from
    mixture: dict = None              # "index": one fixed mixture {index: weight} instead
    seed: int = 0
    strength: tuple = None            # (low, high), None for models without strength
    content_size: int = None
    crop_size: int = None
    style_size: int = None            # square crop + thumbnail side (recipes), else None
    min_style_size: int = None
    prepare_options: dict = dataclasses.field(default_factory=dict)
    stylize_options: dict = dataclasses.field(default_factory=dict)
    format: str = "png"
    quality: int = 95
    batch_size: int = 8
    threads: int = None               # TensorFlow threads per worker process (None: default)
    progress_seconds: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS   # None: no cap of ours (PIL's own stays)

    @property
    def manifest(self):
        """Path of ``manifest.jsonl``."""
        return join(self.output, dataset.MANIFEST)

    @property
    def content_patterns(self):
        """The Beam patterns whose matches are the content files
        (:func:`~nst_tf.scale.dataset.pattern_variants`)."""
        return dataset.pattern_variants(self.content_pattern)

    @property
    def style_patterns(self):
        """The Beam patterns whose matches are the style files (style-image models)."""
        return dataset.pattern_variants(self.style_pattern) if self.style_pattern else []

    @property
    def output_pattern(self):
        """The Beam pattern of every file below the output folder."""
        return dataset.escape(self.output) + "/**"


def _is_remote(path):
    return "://" in path


def _normalize(path):
    path = os.fspath(path)
    if _is_remote(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _existing(source):
    """``(root, pattern)`` of a file or folder that exists under exactly the name ``source``,
    glob characters and all; None when there is none."""
    from apache_beam.io.filesystems import FileSystems

    base = source.rstrip("/") or "/"
    literal = dataset.escape(base)
    if not _is_remote(source):
        if os.path.isdir(source):
            return base, literal.rstrip("/") + "/**"
        if os.path.exists(source):  # a file, or something else that the pipeline refuses
            return os.path.dirname(base), literal
        return None
    try:
        if not source.endswith("/") and FileSystems.match([literal], [1])[0].metadata_list:
            return base.rsplit("/", 1)[0], literal
        if FileSystems.match([literal + "/**"], [1])[0].metadata_list:
            return base, literal + "/**"
    except Exception:  # noqa: BLE001  an unknown scheme...: said by source_pattern's listing
        pass
    return None


def source_pattern(source, what):
    """``(root, pattern)`` of a folder, a glob pattern or a single file, local or remote; a file
    or folder that exists under the name given is taken literally, even with glob characters.

    Raises:
        ConfigError: nothing matches.
    """
    from apache_beam.io.filesystems import FileSystems

    if not source or not str(source).strip():
        raise ConfigError(f"no {what} given")
    source = _normalize(str(source).strip())
    existing = _existing(source)
    if existing is not None:
        root, pattern = existing
    elif dataset.is_pattern(source):
        root, pattern = dataset.pattern_root(source), source
    elif _is_remote(source):
        root, pattern = source.rstrip("/"), dataset.escape(source.rstrip("/")) + "/**"
    else:
        raise ConfigError(f"{what} not found: {source} (no such file, folder or pattern)")
    try:
        found = any(FileSystems.match([p], [1])[0].metadata_list
                    for p in dataset.pattern_variants(pattern))
    except Exception as e:  # noqa: BLE001  unknown scheme, missing credentials, ...
        raise ConfigError(f"cannot list {what} {pattern}: {dataset.one_line(e)}") from None
    if not found:
        raise ConfigError(f"no {what} files match {pattern}")
    return root, pattern


def resolved(path):
    """``path`` with symbolic links resolved (local paths; others unchanged)."""
    return path.rstrip("/") if _is_remote(path) else os.path.realpath(path)


def inside(path, folder):
    """True when ``path`` is ``folder`` or below it (resolved paths, see :func:`resolved`)."""
    path, folder = resolved(path), resolved(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _check_apart(output, folder, what):
    """ConfigError when the output folder and an input folder overlap (compared resolved, so
    a symbolic link into the input tree is seen)."""
    if not folder:
        return
    if inside(output, folder):
        raise ConfigError(f"the output folder {output} is inside the {what} folder {folder}"
                          f"{_via(output)}: the outputs would land among the inputs and a rerun "
                          "would read them")
    if inside(folder, output):
        raise ConfigError(f"the {what} folder {folder}{_via(folder)} is inside the output "
                          f"folder {output}: give an output folder apart from the inputs")


def _via(path):
    real = resolved(path)
    return "" if real == path.rstrip("/") else f" (through a link: {real})"


def _option_names(family):
    """``(prepare options, stylize options)`` the family takes for dataset runs."""
    from nst_tf.families import accepted_options

    prepare = set(accepted_options(family.prepare_style))
    stylize = set(accepted_options(family.stylize_batch))
    takes_any = any(p.kind is p.VAR_KEYWORD
                    for p in inspect.signature(family.stylize_batch).parameters.values())
    if takes_any:  # the default stylize_batch passes options on to stylize
        stylize |= set(accepted_options(family.stylize))
    return prepare - set(_RESERVED), stylize - set(_RESERVED)


def takes_strength(family):
    """True when the family's models take a strength."""
    from nst_tf.families import accepted_options

    return "strength" in accepted_options(family.stylize)


def _split_options(family, options, style_size, square_styles):
    prepare_names, stylize_names = _option_names(family)
    unknown = sorted(set(options) - prepare_names - stylize_names)
    if unknown:
        accepted = sorted(prepare_names | stylize_names)
        raise ConfigError(f"{', '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not "
                          f"apply to {family.name} models in a dataset run; they take "
                          f"{', '.join(accepted) or 'no options'}")
    if square_styles:  # the pipeline crops and resizes the style images itself
        options = {**options, "style_size": None}
    elif style_size is not None:
        if "style_size" not in prepare_names | stylize_names:
            raise ConfigError(f"style_size does not apply to {family.name} models")
        options = {**options, "style_size": int(style_size) or None}
    prepare = {k: v for k, v in options.items() if k in prepare_names}
    stylize = {k: v for k, v in options.items() if k in stylize_names}
    return prepare, stylize


def _index_styles(family, network, styles, style_weights, model):
    """``(pool, mixture)`` for a multi-style network."""
    from magenta_compat.which_styles import check_style_index, parse_which_styles

    count = family.num_styles(network)
    if styles is not None and style_weights is not None:
        raise ConfigError("give styles (indices to choose from) or style_weights (one mixture "
                          "for every image), not both")
    if style_weights is not None:
        mixture = style_weights
        if isinstance(style_weights, str):
            try:
                mixture = ast.literal_eval(style_weights.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
                raise ConfigError(f"style_weights {style_weights!r} is not a mixture "
                                  f"{{index: weight, ...}} ({dataset.one_line(e)})") from None
        if not isinstance(mixture, dict):
            raise ConfigError(f"style_weights must be a mixture {{index: weight, ...}}, got "
                              f"{style_weights!r}")
        parse_which_styles(mixture, count)  # validates indices and weights
        return (), {int(k): float(v) for k, v in sorted(mixture.items())}
    if styles is None:
        return tuple(range(count)), None
    if isinstance(styles, str):
        try:
            styles = [int(s) for s in styles.replace("[", "").replace("]", "").split(",")
                      if s.strip()]
        except ValueError:
            raise ConfigError(f"{model} is a multi-style network ({count} styles): styles must be "
                              f"style indices such as 0,3,5, got {styles!r}") from None
    if isinstance(styles, numbers.Integral):
        styles = [styles]
    pool = sorted({check_style_index(int(s), count) for s in styles})
    if not pool:
        raise ConfigError("the list of style indices is empty")
    return tuple(pool), None


def _positive(value, name, zero="keep"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer (0: {zero}), got {value!r}")
    return int(value) or None


def make_plan(content, output, model=None, *, styles=None, seed=0, strength=None,
              content_size=None, crop_size=None, style_size=None, recipe=None, format=None,
              batch_size=8, style_weights=None, threads=None, progress_seconds=10.0,
              max_pixels=DEFAULT_MAX_PIXELS, **options):
    """Check a dataset request and return its :class:`DatasetPlan`.

    Args:
        content: folder, glob pattern or file of content images (local or remote).
        output: output folder; it mirrors the content tree.
        model: any model :func:`nst_tf.stylize` takes by name or path (``"adain"``,
            ``"arbitrary"``, ``"varied"``, a checkpoint, a ``.keras`` file; remote paths are
            copied to each worker). Default: the recipe's.
        styles: style images (folder / pattern) for arbitrary-style models; style indices to
            draw from (``"0,3,5"``, default all) for multi-style networks; None otherwise.
        seed: picks each image's style and strength (with its relative path).
        strength: a number or ``"low,high"``: each image's strength is drawn from the range.
        content_size, crop_size: resize content images' shorter side, then centre-crop
            (0 or None: keep).
        style_size: with a recipe, the side style images are square-cropped and shrunk to;
            otherwise the model's own style resizing (AdaIN 512, arbitrary 256).
        recipe: a :data:`~nst_tf.scale.dataset.RECIPES` name; explicit arguments override it.
        format: ``"png"`` (default) or ``"jpeg"``.
        batch_size: most images per forward pass (images of one size are batched).
        style_weights: multi-style networks: one mixture ``{index: weight}`` for all images.
        threads: TensorFlow threads per worker process (None: one per core). Several worker
            processes on one machine (``--direct_num_workers``, Dataflow's one SDK process per
            vCPU) run best with cores / processes each.
        progress_seconds: how often workers print progress (0: never).
        max_pixels: content and style images with more pixels (width × height, read from the
            file's header) are failed rows / left out, never decoded (0 or None: no cap but
            PIL's own, 179 million).
        **options: the family's options (``jit_compile``, ``fast``, ...).
    """
    from nst_tf.scale.model import load_stylizer
    from nst_tf.scale.output import check_output_folder

    base = dataset.recipe(recipe) if recipe else dataset.DatasetRecipe("none")
    model = model if model is not None else base.model
    if model is None:
        raise ConfigError("no model given (--model=adain|arbitrary|varied|PATH)")
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"a dataset run needs the model as a preset name or a path (workers "
                          f"load it themselves); got {type(model).__name__}: save a network "
                          "with network.save('model.keras') and pass that path")
    model = os.fspath(model)
    if not _is_remote(model) and os.path.exists(model):
        model = os.path.abspath(model)
    content_size = _positive(base.content_size if content_size is None else content_size,
                             "content_size")
    crop_size = _positive(base.crop_size if crop_size is None else crop_size, "crop_size")
    if content_size and crop_size and crop_size > content_size:
        raise ConfigError(f"crop_size={crop_size} is larger than content_size={content_size}")
    square_styles = base.style_size is not None
    style_size = _positive(style_size, "style_size") if style_size is not None else None
    if square_styles and style_size is None:
        style_size = base.style_size
    format = format or base.format
    dataset.output_name("x", format)  # validates it
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    threads = _positive(threads, "threads", zero="one per core")
    max_pixels = _positive(max_pixels, "max_pixels", zero="no cap")

    content_root, content_pattern = source_pattern(content, "content")
    output = _normalize(output).rstrip("/")
    _check_apart(output, content_root, "content")
    check_output_folder(output)
    if isinstance(model, (str, os.PathLike)) and not _is_remote(os.fspath(model)):
        check_keeps_inputs(output, [("model", model)], "output")

    stylizer = load_stylizer(model)
    family, network = stylizer.family, stylizer.network
    fields = {}
    if family.style_input == "image":
        if styles is None:
            raise ConfigError(f"{model} ({family.name}) takes a style image per content image: "
                              "give styles (a folder or a glob pattern of style images)")
        if style_weights is not None:
            raise ConfigError("style_weights applies to multi-style networks only")
        fields["style_root"], fields["style_pattern"] = source_pattern(styles, "style image")
        _check_apart(output, fields["style_root"], "style image")
        fields["min_style_size"] = base.min_style_size
        fields["style_size"] = style_size if square_styles else None
    elif family.style_input == "index":
        fields["style_pool"], fields["mixture"] = _index_styles(family, network, styles,
                                                                style_weights, model)
    elif styles is not None or style_weights is not None:
        raise ConfigError(f"{model} ({family.name}) is a single-style network: it takes no "
                          "styles or style_weights")
    if takes_strength(family):
        fields["strength"] = dataset.parse_strength(base.strength if strength is None
                                                    else strength)
    elif strength is not None and dataset.parse_strength(strength) != (1.0, 1.0):
        raise ConfigError(f"strength does not apply to {family.name} models")
    prepare, stylize = _split_options(family, options, None if square_styles else style_size,
                                      square_styles)
    return DatasetPlan(content_root=content_root, content_pattern=content_pattern,
                       output=output, model=model, family=family.name,
                       style_input=family.style_input, seed=int(seed),
                       content_size=content_size, crop_size=crop_size,
                       prepare_options=prepare, stylize_options=stylize, format=format,
                       batch_size=int(batch_size), threads=threads,
                       progress_seconds=float(progress_seconds), max_pixels=max_pixels,
                       **fields)

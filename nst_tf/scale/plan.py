"""The settings of one dataset run, checked once on the machine that builds the pipeline.

:func:`make_plan` turns what a user asks for (sources, model, recipe, flags) into a frozen
:class:`DatasetPlan` that every worker receives: folder roots and match patterns, the model's
family and what a content image takes from it (a style image, a style index, nothing), the
options for the family's :meth:`~nst_tf.families.Family.prepare_style` and
:meth:`~nst_tf.families.Family.stylize_batch`, and the preprocessing. Everything that can be
wrong with the request is a :class:`~nst_tf.errors.ConfigError` here, before a worker starts.

Paths may be local or any filesystem Beam knows (``gs://``, ``s3://``, ``hdfs://``): a folder
means every file below it (files and folders whose names start with ``.`` are skipped), a glob
(``*``, ``?``, ``[``; ``**`` crosses folders) what it matches, with relative paths taken from the
folder above its first glob character.

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
from nst_tf.scale import dataset

#: Keyword options the pipeline itself passes (never taken from the user's options).
_RESERVED = ("strength", "crop")


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """What every worker needs to know about a run (see :func:`make_plan`)."""

    content_root: str
    content_pattern: str
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

    @property
    def manifest(self):
        """Path of ``manifest.jsonl``."""
        return join(self.output, dataset.MANIFEST)


def join(folder, relpath):
    """``folder/relpath`` with ``/`` (local and object-store paths alike)."""
    return folder.rstrip("/") + "/" + relpath


def _is_remote(path):
    return "://" in path


def _normalize(path):
    path = os.fspath(path)
    if _is_remote(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def source_pattern(source, what):
    """``(root, pattern)`` of a folder, a glob pattern or a single file, local or remote.

    Raises:
        ConfigError: nothing matches.
    """
    from apache_beam.io.filesystems import FileSystems

    if not source or not str(source).strip():
        raise ConfigError(f"no {what} given")
    source = _normalize(str(source).strip())
    if dataset.is_pattern(source):
        root, pattern = dataset.pattern_root(source), source
    elif (not _is_remote(source) and os.path.isdir(source)) or source.endswith("/"):
        root = source.rstrip("/")
        pattern = root + "/**"
    elif not _is_remote(source) and os.path.isfile(source):
        root, pattern = os.path.dirname(source), source
    elif _is_remote(source):  # an object, or a "folder" (a prefix)
        found = FileSystems.match([source], [1])[0].metadata_list
        if found and found[0].path == source:
            root, pattern = source.rsplit("/", 1)[0], source
        else:
            root, pattern = source, source + "/**"
    else:
        raise ConfigError(f"{what} not found: {source} (no such file, folder or pattern)")
    try:
        found = FileSystems.match([pattern], [1])[0].metadata_list
    except Exception as e:  # noqa: BLE001  unknown scheme, missing credentials, ...
        raise ConfigError(f"cannot list {what} {pattern}: {dataset.one_line(e)}") from None
    if not found:
        raise ConfigError(f"no {what} files match {pattern}")
    return root, pattern


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
        mixture = ast.literal_eval(style_weights) if isinstance(style_weights, str) \
            else style_weights
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


def _positive(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer (0: keep), got {value!r}")
    return int(value) or None


def make_plan(content, output, model=None, *, styles=None, seed=0, strength=None,
              content_size=None, crop_size=None, style_size=None, recipe=None, format=None,
              batch_size=8, style_weights=None, threads=None, progress_seconds=10.0,
              **options):
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
        **options: the family's options (``jit_compile``, ``fast``, ...).
    """
    from nst_tf.scale.handler import load_stylizer

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
    threads = _positive(threads, "threads")

    content_root, content_pattern = source_pattern(content, "content")
    output = _normalize(output).rstrip("/")
    if output == content_root or output.startswith(content_root + "/"):
        raise ConfigError(f"the output folder {output} is inside the content folder "
                          f"{content_root}: a rerun would read its own outputs")

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
                       progress_seconds=float(progress_seconds), **fields)

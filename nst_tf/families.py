"""One :func:`stylize` for every feed-forward model family.

A *family* is a small adapter (a :class:`Family` subclass, defined next to the family's own code)
that says which models it owns and how to run one:

* which preset names it resolves (``"varied"``, ``"monet"``, ...), which ``model`` prefix it owns
  (e.g. ``"hub:"``), which TensorFlow checkpoints it owns (from their variable names), which other
  files it owns (e.g. PyTorch ``.pth`` weights) and which network objects it owns;
* how to load such a model, and what :func:`stylize`'s ``style`` argument means for it (style
  indices or mixing weights for a multi-style network, style images for an arbitrary-style network,
  nothing for a single-style network), with the options it accepts.

:func:`stylize` resolves ``model`` to a family once, then hands ``content``, ``style`` and the
options to that family. Adding a family means writing its adapter and adding one line to
:data:`FAMILIES`; no function grows an ``if family == ...`` ladder.

Example:
    >>> import numpy as np
    >>> import nst_tf
    >>> from nst_tf.networks import johnson_network, pastiche_network
    >>> photo = np.random.rand(30, 41, 3).astype("float32")
    >>> nst_tf.stylize(photo, {0: 0.5, 2: 0.5}, model=pastiche_network(3)).shape
    (32, 44, 3)
    >>> nst_tf.stylize(photo, model=johnson_network(alpha=0.25), crop=True).shape
    (30, 41, 3)
"""

import functools
import importlib
import inspect
import os

import numpy as np

from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.io import is_local_path, note_local_over_preset

#: The registered families as ``"module:Class"``, tried in this order. Imported on first use.
FAMILIES = (
    "nst_tf.models.arbitrary.family:ArbitraryFamily",
    "nst_tf.models.pastiche.family:PasticheFamily",
    "nst_tf.models.adain.family:AdainFamily",
    "nst_tf.models.texture.family:TextureFamily",
    "nst_tf.models.johnson.family:SingleStyleFamily",  # any image-to-image network: keep it last
)

_KERAS_CACHE_SIZE = 2

#: The modules whose import registers every Keras object a saved nst_tf network can hold
#: (``keras.saving.register_keras_serializable``): the shared layers and, through
#: :mod:`nst_tf.networks`, every family's ``network.py`` (``tests/test_keras_files.py`` checks
#: that no registered class is left out).
KERAS_OBJECT_MODULES = ("nst_tf.layers", "nst_tf.networks", "nst_tf.training.schedules")


class Family:
    """How one kind of model is recognised, loaded and run. Override what applies.

    Attributes:
        name: short name used in messages (``"pastiche"``).
        presets: preset names this family resolves (``("varied", "monet")``).
        prefix: a ``model`` string prefix this family owns (``"hub:"``), or None.
    """

    name = "?"
    presets = ()
    prefix = None
    #: How to run this family's models, named by the messages of programs that do not
    #: (``nst-transform``, ``nst-export``).
    runs_with = "nst_tf.stylize, nst-video or nst-stylize-dataset"

    def owns_network(self, network):
        """True when ``network`` (a loaded object) belongs to this family."""
        return False

    def owns_checkpoint(self, shapes):
        """True when a TensorFlow checkpoint with variables ``{name: shape}`` is this family's."""
        return False

    def owns_path(self, path):
        """True when ``path`` (an existing file or folder that is not a TensorFlow checkpoint
        or ``.keras`` file, e.g. PyTorch weights) is this family's."""
        return False

    def load(self, model):
        """A network from a preset name, a prefixed handle or a path this family owns."""
        raise NotImplementedError

    def stylize(self, network, content, style, **options):
        """Run ``network`` on ``content`` with this family's meaning of ``style``."""
        raise NotImplementedError

    def serving_module(self, network, image_size=None):
        """The serving ``tf.Module`` that :func:`nst_tf.export_saved_model` and
        :func:`nst_tf.export_tflite` write (see :mod:`nst_tf.export`); ``image_size`` fixes the
        input size (TFLite), None leaves it free. Default: this family has no such export."""
        raise ConfigError(f"{self.name} models have no SavedModel / TFLite export (nst-export "
                          f"takes multi-style, single-style and arbitrary-style models); run "
                          f"them with {self.runs_with}")

    def patch_models(self, network, batch, style, **options):
        """How to run ``network`` by patches (:mod:`nst_tf.patches`): ``(several, models)``
        with ``models[b][k]`` the :class:`~nst_tf.patches.PatchModel` of output ``k`` of image
        ``b`` of the float32 ``[B, H, W, 3]`` ``batch``, and ``several`` True when
        :meth:`stylize` would add a style axis. Takes the options of :meth:`stylize`."""
        raise ConfigError(f"{self.name} models cannot be run by patches (tile_size)")

    # --- Many images, one style each (nst_tf.scale) -------------------------------------------
    #: What each content image of a dataset takes: ``"image"`` (a style image), ``"index"``
    #: (one of :meth:`num_styles` styles, or a fixed mixture) or ``None`` (no style).
    style_input = None

    def num_styles(self, network):
        """How many styles an ``"index"`` family's ``network`` holds."""
        raise ConfigError(f"{self.name} models have no numbered styles")

    def prepare_style(self, network, style):
        """What :meth:`stylize_batch` needs of one style, computed once per style and reused
        for every content image that takes it (AdaIN statistics, an embedding...).

        ``style`` is a float32 ``[h, w, 3]`` image, an index or a mixture, as
        :attr:`style_input` says; the result is a small picklable value. Families add the
        keyword-only options they take. Default: the style unchanged."""
        return style

    def stylize_batch(self, network, batch, styles, strengths=None, **options):
        """Stylize a float32 ``[B, H, W, 3]`` batch with one prepared style per image
        (``styles``, from :meth:`prepare_style`) and one strength per image (``strengths``, or
        None), as ``[B, H, W, 3]`` float32 in [0, 1] (the input's size).

        Default: one :meth:`stylize` call per run of equal styles and strengths (a
        single-style network runs the whole batch at once); families override it to mix
        styles in one call."""
        strengths = [None] * len(batch) if strengths is None else list(strengths)
        height, width = batch.shape[1:3]
        outputs, start = [], 0
        while start < len(batch):
            stop = start + 1
            while stop < len(batch) and _same_style(styles[stop], styles[start]) \
                    and strengths[stop] == strengths[start]:
                stop += 1
            kwargs = dict(options)
            if strengths[start] is not None:
                kwargs["strength"] = strengths[start]
            out = self.stylize(network, batch[start:stop], styles[start], **kwargs)
            outputs.append(np.asarray(out, np.float32)[:, :height, :width])
            start = stop
        return np.concatenate(outputs)


def _same_style(a, b):
    """Equal prepared styles (None, numbers, dicts, arrays, tuples of them)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_style(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@functools.lru_cache(maxsize=None)
def registered():
    """The family adapters of :data:`FAMILIES`, instantiated once, in order."""
    families = []
    for entry in FAMILIES:
        module, _, cls = entry.partition(":")
        families.append(getattr(importlib.import_module(module), cls)())
    return tuple(families)


def preset_names():
    """Every preset name of every family, sorted."""
    return sorted(name for family in registered() for name in family.presets)


def _file_key(path):
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_mtime_ns, stat.st_size


def register_keras_objects():
    """Import :data:`KERAS_OBJECT_MODULES`, so that ``keras.saving.load_model`` finds every
    nst_tf layer of a ``.keras`` file (Keras imports only its own modules by name).

    Example:
        >>> register_keras_objects()
        >>> import keras
        >>> keras.saving.get_registered_object("nst_tf>ReflectConvBias").__name__
        'ReflectConvBias'
    """
    for module in KERAS_OBJECT_MODULES:
        importlib.import_module(module)


@functools.lru_cache(maxsize=_KERAS_CACHE_SIZE)
def _load_keras_cached(path, mtime_ns, size):
    del mtime_ns, size  # part of the cache key only: a rewritten file is reloaded
    import keras

    register_keras_objects()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # zip / JSON / unknown-layer errors of all kinds
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"cannot load Keras model {path}: {type(e).__name__}: {text}") \
            from None


def load_keras_file(path):
    """A Keras model from a ``.keras`` file, with nst_tf's custom layers (cached on path,
    size and modification time)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Keras model file not found: {path}")
    return _load_keras_cached(*_file_key(path))


def family_of_network(network):
    """The family owning a loaded ``network``; ConfigError when none does."""
    for family in registered():
        if family.owns_network(network):
            return family
    names = ", ".join(f.name for f in registered())
    raise ConfigError(f"model {getattr(network, 'name', type(network).__name__)!r} belongs to no "
                      f"known family ({names}): pass a network built by nst_tf.networks, a "
                      "preset name or a checkpoint path")


def _family_of_path(path):
    for family in registered():
        if family.owns_path(path):
            return family
    from magenta_compat.checkpoint import checkpoint_shapes

    try:
        shapes = checkpoint_shapes(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; the preset names are {', '.join(preset_names())}") from None
    for family in registered():
        if family.owns_checkpoint(shapes):
            return family
    sample = ", ".join(sorted(shapes)[:5])
    raise CheckpointError(f"checkpoint {path} holds no model of a known family "
                          f"({', '.join(f.name for f in registered())}); its first variables: "
                          f"{sample or 'none'}")


def resolve(model):
    """``(family, network)`` for any ``model`` that :func:`stylize` accepts."""
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        if not callable(model):
            raise ConfigError(f"model must be a preset name ({', '.join(preset_names())}), a "
                              f"path or a network, got {type(model).__name__}")
        return family_of_network(model), model
    for family in registered():
        if family.prefix and model.startswith(family.prefix):
            return family, family.load(model)
        if model in family.presets:
            if not is_local_path(model):
                return family, family.load(model)
            note_local_over_preset(model)    # an existing path wins (nst_tf.io.is_local_path)
    if model.endswith(".keras"):
        network = load_keras_file(model)
        return family_of_network(network), network
    from nst_tf.training.train_dir import is_train_dir, load_train_dir

    if is_train_dir(model):    # any mode's train_dir: its latest network
        network = load_train_dir(model)
        return family_of_network(network), network
    if not os.path.exists(model) and not os.path.exists(model + ".index"):
        raise CheckpointError(f"model {model!r} is neither a preset ({', '.join(preset_names())})"
                              " nor an existing checkpoint, .keras file or folder")
    family = _family_of_path(model)
    return family, family.load(model)


def accepted_options(method):
    """The keyword-only option names of a family method (e.g. ``family.stylize``)."""
    return [name for name, p in inspect.signature(method).parameters.items()
            if p.kind is p.KEYWORD_ONLY]


def _check_options(family, options):
    accepted = accepted_options(family.stylize)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not "
                          f"apply to {family.name} models; they take "
                          f"{', '.join(accepted) or 'no options'}")


def stylize(content, style=None, model="varied", *, tile_size=None, statistics="thumbnail",
            thumbnail_size=1024, **options):
    """Stylize ``content`` with a trained feed-forward model of any family.

    Args:
        content: an image path, a float32 ``[H, W, 3]`` image or a ``[B, H, W, 3]`` batch in
            [0, 1] (uint8 arrays are divided by 255).
        style: what the model's family takes: for multi-style (pastiche) networks an int, a dict
            ``{index: weight}``, a length-N vector, a ``[K, N]`` array or a Magenta
            ``which_styles`` string (see :mod:`nst_tf.models.pastiche.family`); ``None`` for single-style
            networks; a style image (path or array) or a list of them for AdaIN networks
            (see :mod:`nst_tf.models.adain.family`). See each family's ``stylize`` for the others.
        model: a preset name (``"varied"``, ``"monet"``, ...), a checkpoint path, a ``.keras``
            file, the ``--train_dir`` of any ``nst-train`` mode (its latest checkpoint), a
            prefixed handle its family owns, or a loaded network.
        tile_size: run the network on patches whose cores are ``tile_size`` pixels wide (a
            multiple of the network's stride, e.g. 4 for pastiche networks, 8 for AdaIN), with a
            halo from the network's receptive field, for images too large to stylize at once
            (:mod:`nst_tf.patches`). None (default): the whole image at once.
        statistics: with ``tile_size``, where the normalization statistics come from:
            ``"thumbnail"`` (default; URST: a copy whose longest side is ``thumbnail_size``; one
            small extra pass), ``"exact"`` (the whole image's own, measured over the patches:
            the output equals whole-image inference, at the cost of one pass per normalization
            layer) or ``"patch"`` (each patch's own: naive tiling with seams, for comparison).
        thumbnail_size: longest side of the thumbnail (default 1024, URST's).
        **options: the family's options (``crop``, ``batch_size``, ``fast``, ...). An option the
            family does not take is a ConfigError naming the ones it does.

    Returns:
        float32 images in [0, 1]; the shape is described by the family.

    Example:
        >>> import numpy as np
        >>> from nst_tf.networks import pastiche_network
        >>> stylize(np.random.rand(30, 41, 3), "[0, 2]", model=pastiche_network(3),
        ...         crop=True).shape
        (2, 30, 41, 3)
    """
    from nst_tf import patches

    patches.check_statistics(statistics, thumbnail_size)     # also without tile_size
    family, network = resolve(model)
    _check_options(family, options)
    if tile_size is None:
        return family.stylize(network, content, style, **options)
    return patches.stylize(family, network, content, style, tile_size=tile_size,
                           statistics=statistics, thumbnail_size=thumbnail_size, **options)


def stylize_to_file(content, output, style=None, model="varied", *, tile_size,
                    statistics="thumbnail", thumbnail_size=1024, rounding="round",
                    progress=False, **options):
    """Stylize one image by patches straight into the image file ``output``.

    The output never exists as a float32 array: each patch core goes into a uint8 map on disk
    beside ``output``, which is then encoded and written atomically (for images too large to
    hold twice, e.g. 12,000 x 8,000). ``content`` is a path or an ``[H, W, 3]`` array;
    ``style``, ``model``, ``tile_size``, ``statistics``, ``thumbnail_size`` and the family's
    options are those of :func:`stylize` and must give one output. ``rounding`` is how floats
    become bytes (``"round"``, or ``"truncate"`` as Magenta's scripts do); ``progress`` writes a
    line per patch to stderr. Returns ``output``.

    Example:
        >>> import numpy as np, os, tempfile
        >>> from nst_tf.networks import pastiche_network
        >>> path = os.path.join(tempfile.mkdtemp(), "out.png")
        >>> stylize_to_file(np.random.rand(40, 50, 3), path, 0, pastiche_network(2, alpha=0.25),
        ...                 tile_size=16, crop=True) == path
        True
    """
    from nst_tf import patches

    family, network = resolve(model)
    _check_options(family, options)
    return patches.stylize_to_file(family, network, content, output, style, tile_size=tile_size,
                                   statistics=statistics, thumbnail_size=thumbnail_size,
                                   rounding=rounding, progress=progress, **options)

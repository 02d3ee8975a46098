"""Training recipes: one small class per ``nst-train --mode``, and their registry.

A :class:`Recipe` is to training what a :class:`~nst_tf.families.Family` is to inference: it holds
everything that is particular to one mode, so the driver (:func:`nst_tf.training.train`) has no
branch on the mode. The driver

1. makes the recipe from the data sources and the mode's options (cheap checks, style images);
2. creates the ``tf.distribute`` strategy, then asks the recipe, *inside* ``strategy.scope()``,
   for its trainer (network, loss, optimizer's learning rate): :meth:`Recipe.build`;
3. records :meth:`Recipe.config` in the train_dir (a resumed run must have the same) and
   restores the latest checkpoint, which gives the start step;
4. asks for the input pipeline *from that step* (:meth:`Recipe.dataset`) and the validation
   images of the TensorBoard grid (:meth:`Recipe.validation_images`);
5. trains, then lets the recipe write what it writes at the end (:meth:`Recipe.finish`).

Options. Every mode takes the options of :func:`~nst_tf.training.train` itself (batch size,
image size, steps, learning rate, strategy, seed, checkpoints, logs). Anything else is a mode's
own option, declared in its class attribute :attr:`Recipe.options` with its default; an option
that a mode does not declare is an error naming the modes that do (:func:`modes_taking`), and
``nst-train`` derives its "this flag does not apply" errors from the same declarations.

Registry. :data:`RECIPES` lists every recipe as ``"module:Class"``, imported on first use; each
family's recipes live in its own folder (``nst_tf/models/<family>/recipe.py``). Adding a mode is
a recipe class there plus one line here.

Example:
    >>> from nst_tf.training.recipe import modes, modes_taking
    >>> modes()
    ('adain', 'arbitrary', 'cin', 'distill', 'finetune', 'johnson', 'texture', 'texture_stylize')
    >>> modes_taking("init_decoder")
    ['adain']
"""

import functools
import importlib

from nst_tf.errors import ConfigError

#: Every training mode, ``"module:Class"``; the class's :attr:`Recipe.mode` is the mode's name.
RECIPES = (
    "nst_tf.models.pastiche.recipe:CinRecipe",
    "nst_tf.models.pastiche.recipe:FinetuneRecipe",
    "nst_tf.models.johnson.recipe:JohnsonRecipe",
    "nst_tf.models.adain.recipe:AdainRecipe",
    "nst_tf.models.texture.recipe:TextureRecipe",
    "nst_tf.models.texture.recipe:TextureStylizeRecipe",
    "nst_tf.models.arbitrary.recipe:ArbitraryRecipe",
    "nst_tf.models.arbitrary.distill:DistillRecipe",
)

#: The options of :func:`~nst_tf.training.train` that every mode takes (they are the driver's).
COMMON_OPTIONS = ("batch_size", "image_size", "learning_rate", "train_steps", "strategy",
                  "collective_timeout", "startup_timeout", "jit_compile", "seed", "save_every",
                  "log_dir", "summary_every", "verbose", "callbacks", "style_images")


class Recipe:
    """How one mode trains. Subclasses set the class attributes and override what applies.

    Args:
        content_images: content image sources (:func:`nst_tf.data.content_dataset`), or None for
            a mode that trains without them (:attr:`uses_content` False).
        style_images: style image sources.
        batch_size, image_size, seed: the run's global batch, crop side and seed.
        **options: the mode's own options (:attr:`options`); an option left out takes its
            default (a given None is a value: ``weights=None`` means random weights).

    Attributes (after :meth:`build`): ``network``, the trained Keras model, and ``trainer``.
    """

    #: The mode's name (``nst-train --mode``).
    mode = None
    #: One line for ``nst-train --help``.
    summary = ""
    #: The mode's own options and their defaults.
    options = {}
    #: Defaults of the driver's options that depend on the mode.
    defaults = {"learning_rate": 1e-3, "train_steps": 40000}
    #: Whether the mode reads content images (False: it trains from noise alone).
    uses_content = True
    #: Whether ``nst-train --export_magenta`` can write the trained network in a Magenta format.
    exports_magenta = False
    #: Whether ``nst-train --export_tflite`` can write the trained network as Magenta's mobile
    #: TF Lite files (:func:`nst_tf.export.export_mobile_tflite`).
    exports_tflite = False

    def __init__(self, content_images, style_images, *, batch_size=16, image_size=256, seed=0,
                 **options):
        check_options(type(self), options)
        if self.uses_content and not content_images:
            raise ConfigError(f"mode {self.mode!r} needs content images (--content_images)")
        if not self.uses_content and content_images:
            raise ConfigError(f"mode {self.mode!r} trains without content images; got "
                              f"{content_images!r}")
        self.content_images, self.style_images = content_images, style_images
        self.batch_size, self.image_size, self.seed = int(batch_size), int(image_size), int(seed)
        self.options = resolve_options(type(self), options)
        self.network = self.trainer = None
        self.check()

    @classmethod
    def takes(cls, option):
        """True when this mode accepts ``option`` (an option of :func:`~nst_tf.training.train`,
        ``"content_images"``, ``"export_magenta"`` or ``"export_tflite"``)."""
        if option == "content_images":
            return cls.uses_content
        if option == "export_magenta":
            return cls.exports_magenta
        if option == "export_tflite":
            return cls.exports_tflite
        return option in COMMON_OPTIONS or option in cls.options

    @classmethod
    def check_tflite_export(cls, options):
        """ConfigError, before training, when ``--export_tflite`` cannot write the network that
        the mode's ``options`` (as given) will train (default: it can)."""

    # --- Before the strategy exists --------------------------------------------------------------

    def check(self):
        """Validate the options and the inputs cheaply (nothing built yet); raise ConfigError.
        Loading the style images, when the mode has fixed ones, belongs here."""

    # --- Inside strategy.scope() -----------------------------------------------------------------

    @classmethod
    def build_network(cls, num_styles, **options):
        """``(network, label_offset)``: the untrained network of this mode for ``num_styles``
        styles, from the resolved :attr:`options` alone (so it can be built without data);
        ``label_offset`` is the style row of label 0 (fine-tuning adds rows after the old)."""
        raise NotImplementedError(f"mode {cls.mode!r} builds its network in build()")

    def build(self):
        """The (uncompiled) :class:`~nst_tf.training.StyleTrainer` holding the network and the
        loss; called inside ``strategy.scope()`` after the seed is set. Sets ``self.network``
        and ``self.trainer``."""
        raise NotImplementedError

    def learning_rate(self, base):
        """The optimizer's learning rate from the ``learning_rate`` option: ``base`` itself or a
        ``keras.optimizers.schedules.LearningRateSchedule``."""
        return base

    def config(self):
        """What fixes the trained architecture, recorded in the train_dir's config file; resuming
        with another value is an error. Called after :meth:`build`."""
        return {"mode": self.mode}

    # --- A train_dir as a model (nst_tf.training.train_dir) --------------------------------------

    @classmethod
    def network_from_config(cls, config):
        """The untrained network that a train_dir whose recorded :meth:`config` is ``config``
        holds (its latest checkpoint is restored into it). Default: :meth:`build_network` with
        the recorded ``num_styles`` and the mode's options as recorded (else their defaults)."""
        options = resolve_options(cls, {k: v for k, v in config.items() if k in cls.options})
        return cls.build_network(config.get("num_styles", 1), **options)[0]

    @classmethod
    def inference_network(cls, network):
        """The trained ``network`` in the form :func:`nst_tf.stylize` and the exports take
        (default: itself)."""
        return network

    # --- Data ------------------------------------------------------------------------------------

    def dataset(self, start_step, batch_slice=None):
        """The endless training input as a ``tf.data.Dataset`` of global batches, positioned at
        batch ``start_step`` (resume), with a ``decode_counter`` attribute
        (:class:`nst_tf.data.DecodeCounter`). Random choices are functions of the seed and the
        example's index, never of reading order.

        ``batch_slice`` (a :class:`nst_tf.data.BatchSlice`, or None for whole batches): only those
        slots of every global batch, which is what one worker reads under a multi-worker strategy
        (:func:`nst_tf.training.distribute.distribute_input`). Pass it to every stream
        (:func:`nst_tf.data.content_dataset`, :func:`nst_tf.data.with_style_labels`): they take the
        element index before any random choice and skip the other slots before decoding, so every
        crop, flip, colour jitter and style label stays what one process draws, and the workers'
        slices of a step together are one process's batch."""
        raise NotImplementedError

    def validation_images(self):
        """Content images of the TensorBoard grid (float32 ``[V, H, W, 3]``), or None."""
        from nst_tf.data import validation_batch

        return validation_batch(self.content_images, self.image_size,
                                count=min(4, self.batch_size))

    # --- After training --------------------------------------------------------------------------

    def finish(self, train_dir):
        """Write what the mode writes at the end of a complete run; returns the paths."""
        return []


@functools.lru_cache(maxsize=None)
def _registered():
    classes = {}
    for entry in RECIPES:
        module, _, name = entry.partition(":")
        cls = getattr(importlib.import_module(module), name)
        classes[cls.mode] = cls
    return classes


def modes():
    """The names of every registered mode, sorted."""
    return tuple(sorted(_registered()))


def recipe_class(mode):
    """The :class:`Recipe` subclass of ``mode``; ConfigError naming the modes otherwise."""
    classes = _registered()
    if mode not in classes:
        raise ConfigError(f"mode must be one of {', '.join(sorted(classes))}, got {mode!r}")
    return classes[mode]


def modes_taking(option):
    """The sorted names of the modes that take ``option``."""
    return sorted(mode for mode, cls in _registered().items() if cls.takes(option))


def not_taken_message(mode, option, flag=None):
    """The one-line error for ``option`` given to ``mode``, which does not take it; with
    ``flag`` (the command-line flag that set it) the message speaks in flags.

    Example:
        >>> not_taken_message("adain", "tv_weight", flag="tv_weight")
        '--tv_weight does not apply to --mode=adain; it applies to --mode=arbitrary, cin, \
distill, finetune, johnson, texture, texture_stylize'
    """
    name, prefix = (f"--{flag}", "--mode=") if flag else (option, "mode ")
    takers = modes_taking(option)
    where = f"it applies to {prefix}{', '.join(takers)}" if takers else "no mode takes it"
    return f"{name} does not apply to {prefix}{mode}; {where}"


def check_options(cls, options):
    """ConfigError for the first option in ``options`` that mode ``cls`` does not take."""
    for option in options:
        if not cls.takes(option):
            raise ConfigError(not_taken_message(cls.mode, option))


def resolve_options(cls, options):
    """``{option: value}`` for every option of mode ``cls``: the given value, else the
    default."""
    return {name: options.get(name, default) for name, default in cls.options.items()}


def mode_defaults(mode):
    """Every default of ``mode``: its learning rate and steps, and its own options'.

    Example:
        >>> mode_defaults("texture")["lr_schedule"]
        'ulyanov'
    """
    cls = recipe_class(mode)
    return {**cls.defaults, **cls.options}


def build_network(mode, num_styles=1, **options):
    """``(network, label_offset)``: the untrained network ``mode`` starts from with
    ``num_styles`` styles and the mode's ``options`` (what :meth:`Recipe.build` trains).

    Example:
        >>> net, offset = build_network("johnson", alpha=0.25)
        >>> net.name, offset
        ('johnson', 0)
    """
    cls = recipe_class(mode)
    check_options(cls, options)
    return cls.build_network(num_styles, **resolve_options(cls, options))

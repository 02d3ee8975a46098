"""Stylize images with a Magenta-compatible multi-style ("pastiche") network.

:func:`stylize` runs a conditional-instance-norm transformer (:func:`nst_tf.networks.pastiche_network`)
on one image or a batch, with one style, a mixture of styles, or several styles at once.

Weights (``N`` = number of styles of the model):

* an int ``k``: style ``k`` alone (the same numbers as the one-hot vector);
* a dict ``{index: weight}``: one mixture ``Σ wᵢ·γᵢ``, ``Σ wᵢ·βᵢ``; weights are **not**
  normalized (Magenta's semantics);
* a length-N vector: the same mixture, given densely;
* a ``[K, N]`` array: K mixtures → K outputs per image;
* a string: Magenta's ``--which_styles`` syntax. ``"[0, 3]"`` (list mode) gives one output per
  listed style, ``"{0: 0.5, 3: 0.5}"`` one mixture.

A plain Python list is read as a length-N vector, never as a list of style indices; for
"one output per style" pass the string ``"[0, 3]"`` or a ``[K, N]`` array.

Shapes. The output has Magenta's size ``4·ceil(H/4) × 4·ceil(W/4)`` (up to 3 px larger than the
input; Magenta does not crop). Pass ``crop=True`` to cut it back to ``H × W``.

==========================  ==========================  ================================
content                     one weight spec             several (list-mode string, [K,N])
==========================  ==========================  ================================
path or ``[H, W, 3]``       ``[H', W', 3]``             ``[K, H', W', 3]``
``[B, H, W, 3]``            ``[B, H', W', 3]``          ``[B, K, H', W', 3]``
==========================  ==========================  ================================

Models: ``"varied"`` / ``"monet"`` (Magenta's released checkpoints, downloaded once, see
:mod:`magenta_compat.pretrained`), a checkpoint path (file, V2 prefix or folder), a ``.keras``
file of such a network, or a Keras network
from :func:`~nst_tf.networks.pastiche_network`. Loaded networks are kept in a small LRU cache, and
the compiled forward function is cached per network, so repeated calls do not reload or retrace.

Example:
    >>> import nst_tf
    >>> out = nst_tf.stylize("photo.jpg", {3: 0.7, 17: 0.3}, model="varied")  # doctest: +SKIP
    >>> nst_tf.save_image("photo_mix.png", out)                              # doctest: +SKIP
"""

import collections
import functools
import numbers
import os

import numpy as np

from nst_tf import images
from nst_tf.device import resolve_jit_compile, resolve_precision
from nst_tf.errors import CheckpointError, ConfigError, StyleWeightsError
from nst_tf.families import Family, load_keras_file
from nst_tf.models.pastiche.network import check_pastiche_input, pastiche_config

_NETWORK_CACHE_SIZE = 2
_FUNCTION_CACHE_SIZE = 4
_functions = collections.OrderedDict()   # (id(network), jit) -> (network, tf.function)


def num_styles_of(network):
    """N of a pastiche network built by :func:`nst_tf.networks.pastiche_network`."""
    try:
        config = pastiche_config(network)
    except (ValueError, AttributeError, IndexError) as e:
        raise ConfigError(f"model {getattr(network, 'name', network)!r} is not a pastiche "
                          f"network from nst_tf.networks.pastiche_network ({e})") from None
    if config["style_input"] != "weights":
        raise ConfigError(f"model {network.name!r} takes integer style labels; stylize() needs "
                          "a network built with pastiche_network(..., style_input='weights')")
    return config["num_styles"]


def style_vectors(weights, num_styles):
    """Turn any accepted ``weights`` into float32 mixing vectors ``[K, N]``.

    Returns:
        ``(vectors, several)``: ``several`` is True when the caller asked for one output per row
        (a list-mode string or a 2-D array), which adds a style axis to the result of
        :func:`stylize`.

    Raises:
        StyleWeightsError: wrong length (naming it and N), an index out of range, NaN or inf.
    """
    from magenta_compat.which_styles import check_style_index, parse_which_styles

    if isinstance(weights, str):
        selection = parse_which_styles(weights, num_styles)
        return selection.vectors, selection.mode == "list"
    if isinstance(weights, dict):
        return parse_which_styles(weights, num_styles).vectors, False
    if isinstance(weights, numbers.Integral) and not isinstance(weights, (bool, np.bool_)):
        vector = np.zeros([1, num_styles], np.float32)
        vector[0, check_style_index(weights, num_styles)] = 1.0
        return vector, False
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise StyleWeightsError(
            f"style weights must be an int, a dict {{index: weight}}, a length-{num_styles} "
            f"vector, a [K, {num_styles}] array or a which_styles string; got "
            f"{type(weights).__name__} {weights!r}") from None
    if array.ndim not in (1, 2) or array.shape[-1] != num_styles or array.size == 0:
        raise StyleWeightsError(
            f"got style weights of shape {array.shape} but the model has num_styles="
            f"{num_styles}: give a vector of {num_styles} weights (or a [K, {num_styles}] "
            "array, an int, or a dict {index: weight})")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise StyleWeightsError(f"style weights contain {array[tuple(bad)]} at position "
                                f"{tuple(int(i) for i in bad)}; weights must be finite")
    return np.atleast_2d(array).astype(np.float32), array.ndim == 2


def _file_key(path):
    """Cache key of a checkpoint: its real path plus the size and mtime of the file holding it
    (a rewritten checkpoint is reloaded)."""
    probe = path if os.path.isfile(path) else path + ".index"
    stat = os.stat(probe)
    return os.path.realpath(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=_NETWORK_CACHE_SIZE)
def _load_cached(path, mtime_ns, size):
    """The pastiche network of a Magenta checkpoint (V1/V2)."""
    del mtime_ns, size  # part of the cache key only: a rewritten checkpoint is reloaded
    from magenta_compat.pastiche import load_pastiche_network

    return load_pastiche_network(path)


def load_model(model, num_styles=None, alpha=None):
    """A pastiche network from a preset name, a checkpoint path, a ``.keras`` file or a network
    (returned as is): the family's one loader (cached on the file).

    A preset or checkpoint path is located by :func:`magenta_compat.pastiche.locate_checkpoint`
    (a preset is downloaded once) and read by :func:`magenta_compat.load_pastiche_network`; the
    train_dir of an ``nst-train --mode=cin`` or ``finetune`` run gives its latest network
    (:func:`nst_tf.training.load_train_dir`).
    ``num_styles`` / ``alpha``, when given, must match the model (Magenta's transform script
    required ``--num_styles``; here it is only a check): a mismatch raises ``CheckpointError``.
    """
    if isinstance(model, (str, os.PathLike)):
        from magenta_compat.pastiche import locate_checkpoint
        from nst_tf.training.train_dir import is_train_dir, load_train_dir

        path = os.fspath(model)
        if path.endswith(".keras"):
            network = load_keras_file(path)
        elif is_train_dir(path):
            network = load_train_dir(path)
        else:
            network = _load_cached(*_file_key(locate_checkpoint(path)))
    elif hasattr(model, "layers") and callable(model):
        network = model
    else:
        raise ConfigError(f"model must be a preset name ('varied', 'monet'), a checkpoint path "
                          f"or a pastiche network, got {type(model).__name__}")
    found = num_styles_of(network)  # also validates that it is a pastiche network
    if num_styles is not None and num_styles != found:
        raise CheckpointError(f"num_styles={num_styles} was given but {_describe(model)} has "
                              f"{found} styles; leave num_styles out to use the model's value")
    found_alpha = pastiche_config(network)["alpha"]
    if alpha is not None and abs(alpha - found_alpha) > 1e-6:
        raise CheckpointError(f"alpha={alpha:g} was given but {_describe(model)} was built with "
                              f"alpha={found_alpha:g}; leave alpha out to use the model's value")
    return network


def load_training_network(checkpoint, alpha=None):
    """The pastiche network of ``checkpoint`` (a preset, a Magenta checkpoint or the train_dir
    of a ``cin`` / ``finetune`` run) with a labels input, as fine-tuning extends it; ``alpha``,
    when given, must match."""
    from magenta_compat import load_pastiche_network
    from nst_tf.models.pastiche.network import is_conditional
    from nst_tf.training.train_dir import is_train_dir, load_train_dir, read_run_config

    path = os.fspath(checkpoint)
    if not is_train_dir(path):
        return load_pastiche_network(path, alpha=alpha, style_input="labels")
    network = load_train_dir(path, for_inference=False)
    if not is_conditional(network):
        raise ConfigError(f"{path} is the train_dir of a --mode={read_run_config(path)['mode']} "
                          "run; fine-tuning extends a multi-style network (a cin or finetune "
                          "train_dir, a Magenta checkpoint or a preset)")
    trained = pastiche_config(network)["alpha"]
    if alpha is not None and abs(alpha - trained) > 1e-6:
        raise CheckpointError(f"alpha={alpha:g} was given but train_dir {path} was trained with "
                              f"alpha={trained:g}; leave alpha out to use the train_dir's")
    return network


def _describe(model):
    return (f"checkpoint {os.fspath(model)}" if isinstance(model, (str, os.PathLike))
            else f"network {getattr(model, 'name', '?')!r}")


#: Compute precisions of :func:`stylize`. ``"bfloat16"`` runs the convolutions in bfloat16
#: (Keras ``mixed_bfloat16``; statistics, CIN and output stay float32): at 512² 2.85x Magenta's
#: speed on a CPU with AMX and 2.06x (1.65x ``fast=True``) on an AVX512-BF16 CPU without AMX, but
#: reported *slower* (0.8x of ``fast=True``) on another AVX512-BF16 CPU without AMX; outputs
#: differ from float32 by ~4e-3 on average (~1 grey level) and up to a few 1e-2, so it is not
#: Magenta-exact. ``"auto"`` takes bfloat16 only where a one-time measurement finds it faster
#: (:func:`nst_tf.device.bfloat16_is_faster`). Default ``"float32"``.
PRECISIONS = ("float32", "bfloat16", "auto")


def _is_fast(network):
    """True when every switchable layer of ``network`` already uses the fast form."""
    flags = [layer.fast for layer in network.layers if hasattr(layer, "fast")]
    return bool(flags) and all(flags)


def _twin(network, precision, fast):
    """A copy of a pastiche network's architecture with another precision / arithmetic form.

    Weights are not copied here: the forward function assigns them on every call.
    """
    from nst_tf.models.pastiche.network import pastiche_network
    from nst_tf.device import dtype_policy

    config = pastiche_config(network)
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    with dtype_policy(policy):
        return pastiche_network(config["num_styles"], alpha=config["alpha"],
                                style_input=config["style_input"], fast=fast,
                                name=f"{network.name}_{policy}{'_fast' if fast else ''}")


_RUNNERS = collections.OrderedDict()     # (id(network), precision, fast) -> (network, body)


def _body(network, precision, fast):
    """``body(images, weights [N]) -> [B, H', W', 3]`` running ``network`` in ``precision`` and
    form (cached): ``network`` itself, or a twin built that way whose variables are copied from
    ``network`` on every call (it never goes stale; ~7 MB copied)."""
    key = (id(network), precision, fast)
    if key in _RUNNERS:
        _RUNNERS.move_to_end(key)
        return _RUNNERS[key][1]
    import tensorflow as tf

    same = precision == "float32" and fast == _is_fast(network)
    runner = network if same else _twin(network, precision, fast)

    def body(batch, weights):
        if runner is not network:
            for target, source in zip(runner.weights, network.weights):
                target.assign(source)
        # The network takes [S, N] weights; S = 1 applies one mixture to the whole batch.
        return tf.cast(runner([batch, weights[None]], training=False), tf.float32)

    body.runner = runner
    _RUNNERS[key] = (network, body)   # keeps `network` alive, so its id stays unique
    while len(_RUNNERS) > _FUNCTION_CACHE_SIZE:
        _RUNNERS.popitem(last=False)
    return body


def forward_function(network, jit_compile="auto", precision="float32", fast=False):
    """The compiled ``f(images [B,H,W,3], weights [N]) -> [B,H',W',3]`` of ``network`` (cached).

    One ``tf.function`` with a shape-polymorphic signature per network and setting, so new image
    sizes do not retrace (XLA still compiles once per concrete shape).

    ``precision="bfloat16"`` or ``fast=True`` (when ``network`` is not already fast, see
    :func:`nst_tf.networks.pastiche_network`) run a twin network built that way, whose variables
    are copied from ``network`` inside the function on every call (it never goes stale; ~7 MB
    copied): ``network`` itself is never modified.
    """
    import tensorflow as tf

    jit = resolve_jit_compile(jit_compile)
    precision = resolve_precision(precision)
    fast = bool(fast) or _is_fast(network)
    key = (id(network), jit, precision, fast)
    if key in _functions:
        _functions.move_to_end(key)
        return _functions[key][1]
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([num_styles_of(network)], tf.float32)]
    forward = tf.function(_body(network, precision, fast), input_signature=spec,
                          jit_compile=jit)
    _functions[key] = (network, forward)  # keeps `network` alive, so its id stays unique
    while len(_functions) > _FUNCTION_CACHE_SIZE:
        _functions.popitem(last=False)
    return forward


def _content_batch(content):
    """Validated float32 ``[B, H, W, 3]`` plus whether the input was a single image."""
    batch, single = images.image_batch(content, what="content image")
    check_pastiche_input(batch, what="content image")
    return batch, single


def stylize(content, weights, model="varied", *, crop=False, batch_size=4, jit_compile="auto",
            precision="float32", fast=False):
    """Stylize ``content`` with a multi-style network.

    Args:
        content: an image path, a float32 ``[H, W, 3]`` image or ``[B, H, W, 3]`` batch in [0, 1]
            (uint8 arrays are divided by 255).
        weights: an int, a dict ``{index: weight}``, a length-N vector, a ``[K, N]`` array, or a
            Magenta ``which_styles`` string (see the module docstring).
        model: ``"varied"``, ``"monet"``, a checkpoint path, or a pastiche network.
        crop: crop the output back to the input size (Magenta does not; default False).
        batch_size: images per forward pass (bounds memory for large batches).
        jit_compile: ``"auto"`` (XLA on GPU/TPU only), True or False.
        precision: ``"float32"`` (default: Magenta's arithmetic with accurately summed
            moments, within 1e-5 of its graph at small sizes),
            ``"bfloat16"`` (about 2x faster on CPUs with fast bfloat16 units, slower on some;
            ~1 grey level different) or ``"auto"`` (bfloat16 where it measures faster); see
            :data:`PRECISIONS`.
        fast: compute the same function in faster forms (sub-pixel and space-to-depth convs;
            see :func:`~nst_tf.networks.pastiche_network`): about
            1.4x less CPU time, outputs within 1e-4 of Magenta's instead of 1e-5. Default False
            (Magenta's arithmetic, unless the network is already fast).

    Returns:
        float32 in [0, 1], shaped as in the module docstring.

    Raises:
        ImageError: unreadable content, wrong shape, NaN/inf, values outside [0, 1], smaller
            than 5x5.
        StyleWeightsError: weights of the wrong length, index out of range, NaN or inf.
        CheckpointError, WeightsUnavailableError: the model cannot be loaded.

    Example:
        >>> import numpy as np
        >>> from nst_tf.networks import pastiche_network
        >>> net = pastiche_network(num_styles=3)
        >>> stylize(np.random.rand(30, 41, 3), {0: 0.5, 2: 0.5}, model=net).shape
        (32, 44, 3)
        >>> stylize(np.random.rand(30, 41, 3), "[0, 2]", model=net, crop=True).shape
        (2, 30, 41, 3)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    network = load_model(model)
    vectors, several = style_vectors(weights, num_styles_of(network))
    batch, single = _content_batch(content)
    forward = forward_function(network, jit_compile, precision, fast)

    outputs = []  # one [B, H', W', 3] array per weight vector
    for vector in vectors:
        chunks = [forward(batch[i:i + batch_size], vector).numpy()
                  for i in range(0, batch.shape[0], batch_size)]
        outputs.append(np.concatenate(chunks, axis=0))
    result = np.stack(outputs, axis=1)                   # [B, K, H', W', 3]
    if crop:
        result = result[:, :, :batch.shape[1], :batch.shape[2]]
    if not several:
        result = result[:, 0]
    if single:
        result = result[0]
    return np.ascontiguousarray(result, dtype=np.float32)


def _require_style(network, style):
    if style is None:
        raise StyleWeightsError(
            f"a multi-style network ({num_styles_of(network)} styles) needs a style: an "
            "index, a dict {index: weight}, a vector of weights or a which_styles string")


class PasticheFamily(Family):
    """:func:`nst_tf.stylize` adapter: ``style`` is a style index, a mixture or a
    ``which_styles`` string (see :func:`stylize`); presets ``"varied"`` and ``"monet"``."""

    name = "pastiche"
    runs_with = "nst-transform, nst_tf.stylize, nst-video or nst-stylize-dataset"

    def serving_module(self, network, image_size=None):
        from nst_tf.export import PasticheModule
        from nst_tf.models.pastiche.network import as_weights_network

        return PasticheModule(as_weights_network(network), image_size=image_size)

    @property
    def presets(self):
        from magenta_compat.pretrained import PRESETS

        return tuple(PRESETS)

    def owns_network(self, network):
        try:
            return pastiche_config(network)["style_input"] == "weights"
        except (ValueError, AttributeError, IndexError, TypeError):
            return False

    def owns_checkpoint(self, shapes):
        gamma = shapes.get("transformer/contract/conv1/InstanceNorm/gamma")
        return gamma is not None and len(gamma) == 2

    def load(self, model):
        return load_model(model)

    def stylize(self, network, content, style, *, crop=False, batch_size=4, jit_compile="auto",
                precision="float32", fast=False):
        _require_style(network, style)
        return stylize(content, style, network, crop=crop, batch_size=batch_size,
                       jit_compile=jit_compile, precision=precision, fast=fast)

    def patch_models(self, network, batch, style, *, crop=False, batch_size=4,
                     jit_compile="auto", precision="float32", fast=False):
        from nst_tf.models.pastiche.network import MIN_PASTICHE_SIZE
        from nst_tf.patches import PatchModel

        _require_style(network, style)
        vectors, several = style_vectors(style, num_styles_of(network))
        check_pastiche_input(batch, what="content image")
        precision = resolve_precision(precision)
        fast = bool(fast) or _is_fast(network)
        body = _body(network, precision, fast)
        jit = resolve_jit_compile(jit_compile)
        size = tuple(batch.shape[1:3]) if crop else None
        return several, [[PatchModel(image, body, ((body.runner, 0),), extras=(vector,),
                                     key=("pastiche", network, precision, fast, jit),
                                     jit_compile=jit, min_size=MIN_PASTICHE_SIZE, crop=size)
                          for vector in vectors] for image in batch]

    style_input = "index"

    def num_styles(self, network):
        return num_styles_of(network)

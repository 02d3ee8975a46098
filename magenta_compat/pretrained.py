"""Magenta's released multi-style pastiche checkpoints: name → URL, number of styles, cached file.

Two presets exist (Dumoulin et al. 2016, released with Magenta's ``image_stylization``):

========  ======  ======================================================================
name      styles  URL
========  ======  ======================================================================
varied    32      http://download.magenta.tensorflow.org/models/multistyle-pastiche-generator-varied.ckpt
monet     10      http://download.magenta.tensorflow.org/models/multistyle-pastiche-generator-monet.ckpt
========  ======  ======================================================================

:func:`resolve` returns the local path of a preset, downloading it once with
``keras.utils.get_file`` into ``$KERAS_HOME/models/magenta/`` (``~/.keras/models/magenta/`` by
default). Offline, it raises :class:`WeightsUnavailableError` saying which URL to fetch, where to
put the file, and that a checkpoint path can be passed instead. Nothing is downloaded at import.

File check: the published sha256 of these files is not known to this project (they could not be
downloaded while it was written), so ``sha256`` is ``None`` and :func:`verify_checkpoint` checks
instead that the file is non-empty, opens as a TensorFlow checkpoint, and holds the 48 transformer
variables with the preset's number of styles (and alpha = 1), with the right shapes.

Example:
    >>> from magenta_compat import pretrained
    >>> pretrained.get_preset("monet").num_styles
    10
    >>> path = pretrained.resolve("varied")   # doctest: +SKIP
"""

import dataclasses
import os

from nst_tf.errors import CheckpointError, WeightsUnavailableError
from nst_tf.io import keras_home

#: Sub-folder of the Keras cache folder that holds the checkpoints.
CACHE_SUBDIR = os.path.join("models", "magenta")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One released checkpoint. ``sha256`` is ``None`` when the published hash is unknown."""

    name: str
    url: str
    num_styles: int
    alpha: float = 1.0
    sha256: str = None
    description: str = ""

    @property
    def filename(self):
        return self.url.rsplit("/", 1)[-1]


#: The released checkpoints by name: "varied" (32 styles) and "monet" (10).
PRESETS = {
    "varied": Preset(
        "varied",
        "http://download.magenta.tensorflow.org/models/multistyle-pastiche-generator-varied.ckpt",
        num_styles=32,
        # sha256 unknown: the file could not be downloaded when this registry was written.
        sha256=None,
        description="32 paintings of varied styles (Dumoulin et al. 2016, appendix)"),
    "monet": Preset(
        "monet",
        "http://download.magenta.tensorflow.org/models/multistyle-pastiche-generator-monet.ckpt",
        num_styles=10,
        # sha256 unknown: the file could not be downloaded when this registry was written.
        sha256=None,
        description="10 paintings by Claude Monet (Dumoulin et al. 2016)"),
}


def is_preset(name):
    """True when ``name`` is a preset name (and not, say, a checkpoint path)."""
    return isinstance(name, str) and name in PRESETS


def get_preset(name):
    """The :class:`Preset` called ``name``; unknown names raise ``CheckpointError`` listing presets."""
    if not is_preset(name):
        raise CheckpointError(f"unknown pretrained model {name!r}; the presets are "
                              f"{', '.join(sorted(PRESETS))}, or pass a checkpoint path")
    return PRESETS[name]


def cache_dir():
    """The Keras cache folder (:func:`nst_tf.io.keras_home`)."""
    return keras_home()


def cache_path(name):
    """Where the checkpoint of preset ``name`` is (or will be) stored."""
    return os.path.join(cache_dir(), CACHE_SUBDIR, get_preset(name).filename)


def verify_checkpoint(path, preset):
    """Check that ``path`` is a non-empty checkpoint holding exactly the transformer variables of
    ``preset`` (its number of styles and alpha); returns ``path``.

    Raises:
        CheckpointError: empty or unreadable file, or shapes that do not fit the preset (the
            message names the file, the expected and the found values).
    """
    from magenta_compat.checkpoint import checkpoint_shapes, check_fit, infer_pastiche_config

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint file is empty: {path} (delete it to download "
                              f"{preset.url} again)")
    shapes = checkpoint_shapes(path)
    transformer = {n: s for n, s in shapes.items() if n.startswith("transformer/")}
    num_styles, alpha = infer_pastiche_config(transformer)
    if (num_styles, alpha) != (preset.num_styles, preset.alpha):
        raise CheckpointError(
            f"{path} has num_styles={num_styles}, alpha={alpha:g} but the {preset.name!r} preset "
            f"has num_styles={preset.num_styles}, alpha={preset.alpha:g}; the file is not "
            f"{preset.url} (delete it to download it again)")
    check_fit(shapes, preset.num_styles, preset.alpha, source=f"checkpoint {path}")
    return path


def resolve(name, download=True):
    """Local path of preset ``name``: the cached file, else a download through ``get_file``.

    Args:
        name: ``"varied"`` or ``"monet"``.
        download: when False, never touch the network (raise if the file is not cached).

    Raises:
        CheckpointError: unknown name, or the cached file is not the expected checkpoint.
        WeightsUnavailableError: the file is not cached and cannot be downloaded.
    """
    preset = get_preset(name)
    base = cache_dir()
    target = os.path.join(base, CACHE_SUBDIR, preset.filename)
    if not os.path.exists(target):
        if not download:
            raise _unavailable(preset, target, "download=False")
        import keras

        try:
            keras.utils.get_file(preset.filename, preset.url, cache_subdir=CACHE_SUBDIR,
                                 cache_dir=base, file_hash=preset.sha256)
        except Exception as e:  # urllib / OSError / keras' wrapped errors
            raise _unavailable(preset, target, f"{type(e).__name__}: {e}") from None
    return verify_checkpoint(target, preset)


def _unavailable(preset, target, reason):
    return WeightsUnavailableError(
        f"the {preset.name!r} checkpoint is not cached and could not be downloaded ({reason}). "
        f"Download {preset.url} and save it as {target} , or pass the path of a checkpoint "
        f"file instead of the preset name.")

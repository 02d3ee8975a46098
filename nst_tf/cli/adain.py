"""``nst-adain``: AdaIN style transfer from the command line, flags as pytorch-AdaIN's ``test.py``::

    nst-adain --content=photo.jpg --style=la_muse.jpg                  # released weights
    # → output/photo_stylized_la_muse.png
    nst-adain --content=photo.jpg --style=a.jpg,b.jpg --style_interpolation_weights=1,3
    # → output/photo_interpolation.png
    nst-adain --content=photo.jpg --style=a.jpg,b.jpg --mask=mask.png  # white: a, black: b
    # → output/photo_masked.png

* ``--model``: ``adain`` (pytorch-AdaIN's released files, downloaded once), a folder with
  ``vgg_normalised.pth`` and ``decoder.pth``, a decoder ``.pth``, an AdaIN ``.keras`` file or a
  ``nst-train --mode=adain`` train_dir; ``--vgg`` / ``--decoder`` give the two files explicitly.
* Differences from ``test.py``: the content keeps its size unless ``--content_size`` is given
  (``test.py`` resizes it to 512), the output is cropped back to the content's size
  (``--nocrop_output`` keeps ``8·ceil(H/8) × 8·ceil(W/8)``), interpolation weights may be
  fractions, ``--save_ext`` defaults to ``.png``, and ``--mask`` (spatial control, from the
  authors' Torch code) is available.
* Errors are one line on stderr and exit code 1; files are written atomically.
"""

import os

from absl import flags

from nst_tf.cli.runner import (call_reporting_errors, define_tiling_flags, entry_points,
                               tiling_options)
from nst_tf.errors import ConfigError

PROGRAM = "nst-adain"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("content", None, "Content image path.", **fv)
    flags.DEFINE_string("style", None, "Style image path(s), comma-separated: one output per "
                        "style, or one mixture with --style_interpolation_weights / --mask.",
                        **fv)
    flags.DEFINE_string("style_interpolation_weights", None,
                        "Comma-separated weights, one per style (normalised to sum 1).", **fv)
    flags.DEFINE_float("alpha", 1.0, "Degree of stylization in [0, 1] (AdaIN's alpha).", **fv)
    flags.DEFINE_bool("preserve_color", False, "Keep the content's colours (CORAL on the "
                      "style image).", **fv)
    flags.DEFINE_string("mask", None, "Mask image for two styles: white takes the first, "
                        "black the second.", **fv)
    flags.DEFINE_string("model", "adain", "adain (released weights), a folder, a decoder .pth, "
                        "an AdaIN .keras file or a train_dir.", **fv)
    flags.DEFINE_string("vgg", None, "vgg_normalised.pth (with --decoder; overrides --model).",
                        **fv)
    flags.DEFINE_string("decoder", None, "decoder.pth (with --vgg; overrides --model).", **fv)
    flags.DEFINE_integer("content_size", 0, "Resize the content's shorter side to this (0: keep).",
                         **fv)
    flags.DEFINE_integer("style_size", 512, "Resize styles' shorter side to this (0: keep).",
                         **fv)
    flags.DEFINE_bool("crop_output", True, "Crop the output to the content's size.", **fv)
    flags.DEFINE_string("output", "output", "Folder for the outputs (created if missing).", **fv)
    flags.DEFINE_string("save_ext", ".png", "Output extension (.png, .jpg, ...).", **fv)
    define_tiling_flags(flag_values)
    flags.mark_flags_as_required(["content", "style"], **fv)


def stylize_files(content, styles, output, *, model="adain", vgg=None, decoder=None,
                  style_interpolation_weights=None, alpha=1.0, preserve_color=False, mask=None,
                  content_size=0, style_size=512, crop_output=True, save_ext=".png",
                  tile_size=None, statistics="thumbnail", thumbnail_size=1024):
    """Stylize ``content`` with the ``styles`` (list of paths); write and return the outputs.

    With ``tile_size``, each output is made by patches and streamed to its file
    (:func:`nst_tf.stylize_to_file`, with a progress line per patch on stderr)."""
    import nst_tf
    from nst_tf import images

    if bool(vgg) != bool(decoder):
        raise ConfigError("--vgg and --decoder go together (or use --model)")
    network = nst_tf.load_adain(vgg, decoder) if vgg else model
    weights = None
    if style_interpolation_weights:
        try:
            weights = [float(w) for w in style_interpolation_weights.split(",")]
        except ValueError:
            raise ConfigError(f"--style_interpolation_weights must be numbers, got "
                              f"{style_interpolation_weights!r}") from None
    image = images.load_image(content)
    if content_size:
        from nst_tf.data import scale_short_side

        image = images.as_float_image(scale_short_side(image, content_size).numpy().clip(0, 1))
    options = dict(model=network, style_weights=weights, strength=alpha,
                   preserve_color=preserve_color, mask=mask, style_size=style_size or None,
                   crop=crop_output)
    stem = os.path.splitext(os.path.basename(content))[0]
    if weights or mask:
        names, chosen = [f"{stem}_{'masked' if mask else 'interpolation'}"], [styles]
    else:
        names = [f"{stem}_stylized_{os.path.splitext(os.path.basename(s))[0]}" for s in styles]
        chosen = styles
    from nst_tf.io import check_keeps_inputs

    inputs = [("--content", content), ("--style", styles), ("--mask", mask), ("--vgg", vgg),
              ("--decoder", decoder), ("--model", model if isinstance(model, str) else None)]
    for name in names:   # before any stylization
        check_keeps_inputs(os.path.join(output, name + save_ext), inputs)
    if tile_size is not None:
        from nst_tf.families import stylize_to_file

        os.makedirs(output, exist_ok=True)
        return [stylize_to_file(image, os.path.join(output, name + save_ext), style,
                                tile_size=tile_size, statistics=statistics,
                                thumbnail_size=thumbnail_size, progress=True, **options)
                for name, style in zip(names, chosen)]
    result = nst_tf.stylize(image, styles if (weights or mask or len(styles) > 1) else styles[0],
                            **options)
    outputs = [result] if (weights or mask or len(styles) == 1) else result
    os.makedirs(output, exist_ok=True)
    paths = []
    for name, out in zip(names, outputs):
        path = os.path.join(output, name + save_ext)
        images.save_image(path, out)
        paths.append(path)
    return paths


def execute(flag_values):
    """Run with parsed flags; print the written paths. Returns the exit code (0 or 1)."""
    fv = flag_values
    tiles, code = call_reporting_errors(PROGRAM, tiling_options, fv)
    if code:
        return code
    styles = [s.strip() for s in fv.style.split(",") if s.strip()]
    paths, code = call_reporting_errors(
        PROGRAM, stylize_files, fv.content, styles, fv.output, model=fv.model, vgg=fv.vgg,
        decoder=fv.decoder, style_interpolation_weights=fv.style_interpolation_weights,
        alpha=fv.alpha, preserve_color=fv.preserve_color, mask=fv.mask,
        content_size=fv.content_size, style_size=fv.style_size, crop_output=fv.crop_output,
        save_ext=fv.save_ext, **tiles)
    for path in paths or ():
        print(path)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

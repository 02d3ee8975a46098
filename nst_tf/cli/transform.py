"""``nst-transform``: stylize an image with a multi-style network, flag-compatible with Magenta.

Same flags and output names as Magenta's ``image_stylization_transform``::

    nst-transform --checkpoint=varied --which_styles="[0,5,17]" \\
        --input_image=photo.jpg --output_dir=out --output_basename=photo
    # → out/photo_0.png out/photo_5.png out/photo_17.png

    nst-transform --checkpoint=multistyle-pastiche-generator-monet.ckpt \\
        --which_styles="{0: 0.5, 3: 0.5}" --input_image=photo.jpg --output_dir=out \\
        --output_basename=photo
    # → out/photo_0_500_3_500.png

Differences from Magenta:

* ``--checkpoint`` also accepts the preset names ``varied`` and ``monet`` (downloaded once).
* ``--num_styles`` and ``--alpha`` are optional: they are read from the checkpoint. Given and
  different from the checkpoint, they are an error that names both values.
* Magenta writes **JPEG bytes into its ``.png`` files**; here ``--save_format=png`` (default)
  writes real PNG, and ``--save_format=jpeg`` writes JPEG to ``.jpg`` files.
* Pixels are converted with Magenta's truncation ``uint8(x * 255)``, so the decoded PNG equals
  Magenta's pixels before its JPEG encoding.
* Grayscale inputs are tiled to RGB (as Magenta does); RGBA inputs are composited on white
  (Magenta fails on them). The output is ``4·ceil(H/4) × 4·ceil(W/4)``, as in Magenta.
* Errors are one line on stderr and exit code 1; files are written atomically.

``scripts/transform.py`` runs the same :func:`run`.
"""

import os

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points
from nst_tf.errors import ConfigError

PROGRAM = "nst-transform"

_EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    flags.DEFINE_string(
        "checkpoint", None,
        "Magenta checkpoint: a file, a V2 prefix, a folder (its latest checkpoint), or a preset "
        "name ('varied': 32 styles, 'monet': 10 styles).", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_styles", None,
        "Number of styles of the checkpoint. Optional: read from the checkpoint; if given it must "
        "match (Magenta requires it, default 1).", flag_values=flag_values)
    flags.DEFINE_float(
        "alpha", None,
        "Width multiplier of the network. Optional: read from the checkpoint; if given it must "
        "match.", flag_values=flag_values)
    flags.DEFINE_string(
        "which_styles", "[0]",
        "Styles to apply, a Python literal: a list '[0, 3]' writes one image per style, a dict "
        "'{0: 0.5, 3: 0.5}' writes one mixture (weights are not normalized). "
        "'[0]' is equivalent to '{0: 1.0}'.", flag_values=flag_values)
    flags.DEFINE_string("input_image", None, "Path of the content image.",
                        flag_values=flag_values)
    flags.DEFINE_string("output_dir", None, "Folder for the outputs (created if missing).",
                        flag_values=flag_values)
    flags.DEFINE_string("output_basename", None,
                        "Output files are {output_basename}_{style}.png (list mode) or "
                        "{output_basename}_{i}_{w*1000}_....png (dict mode), as in Magenta.",
                        flag_values=flag_values)
    flags.DEFINE_enum(
        "save_format", "png", sorted(_EXTENSIONS),
        "png (default): real PNG files named *.png. jpeg: JPEG files (quality 95) named *.jpg. "
        "Note: Magenta's transform script writes JPEG bytes into files named *.png; use jpeg "
        "for JPEG output with an honest extension.", flag_values=flag_values)
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "auto"],
                      "float32 (Magenta's numbers), bfloat16 (about 2x faster on CPUs with AMX, "
                      "slower without; ~1 grey level different) or auto (bfloat16 on AMX CPUs "
                      "only).", flag_values=flag_values)
    flags.DEFINE_bool("fast", False,
                      "Compute the same network in faster forms (about 1.4x less CPU time); "
                      "outputs within float32 rounding of Magenta's (~1e-4) instead of "
                      "bit-identical.", flag_values=flag_values)
    flags.DEFINE_string("jit_compile", "auto",
                        "XLA compilation: auto (on GPU/TPU only), true or false.",
                        flag_values=flag_values)
    flags.mark_flags_as_required(["checkpoint", "input_image", "output_dir", "output_basename"],
                                 flag_values=flag_values)


def transform(checkpoint, input_image, output_dir, output_basename, which_styles="[0]",
              num_styles=None, alpha=None, save_format="png", jit_compile="auto",
              precision="float32", fast=False):
    """Stylize ``input_image`` and write Magenta-named files; returns the paths written.

    Raises:
        NSTError: any bad input (checkpoint, image, which_styles, output folder).
    """
    from magenta_compat.which_styles import parse_which_styles
    from nst_tf import images
    from nst_tf.pastiche import load_model, num_styles_of, stylize

    if save_format not in _EXTENSIONS:
        raise ConfigError(f"save_format must be one of {sorted(_EXTENSIONS)}, got {save_format!r}")
    if not output_basename or os.sep in output_basename:
        raise ConfigError(f"output_basename must be a plain file name, got {output_basename!r}")
    network = load_model(checkpoint, num_styles=num_styles, alpha=alpha)
    selection = parse_which_styles(which_styles, num_styles_of(network))
    content = images.load_image(input_image)
    outputs = stylize(content, selection.vectors, model=network, jit_compile=jit_compile,
                      precision=precision, fast=fast)
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, output in zip(selection.output_filenames(output_basename,
                                                       _EXTENSIONS[save_format]), outputs):
        path = os.path.join(output_dir, name)
        images.save_image(path, images.float_to_uint8(output, rounding="truncate"), quality=95)
        paths.append(path)
    return paths


def execute(flag_values):
    """Run with parsed flags; print the written paths. Returns the exit code (0 or 1)."""
    paths, code = call_reporting_errors(
        PROGRAM, transform, flag_values.checkpoint, flag_values.input_image,
        flag_values.output_dir, flag_values.output_basename,
        which_styles=flag_values.which_styles, num_styles=flag_values.num_styles,
        alpha=flag_values.alpha, save_format=flag_values.save_format,
        jit_compile=flag_values.jit_compile, precision=flag_values.precision,
        fast=flag_values.fast)
    for path in paths or ():
        print(path)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

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

Arbitrary-style models (``--checkpoint=arbitrary``, Magenta's ``arbitrary_style_transfer``
checkpoint / folder / ``.tar.gz``, or ``hub:<handle>``) take style images instead of
``--which_styles``, with the options of Magenta's ``arbitrary_image_stylization_with_weights``::

    nst-transform --checkpoint=arbitrary --style_images=a.jpg,b.jpg --input_image=photo.jpg \
        --output_dir=out --output_basename=photo
    # → out/photo_stylized_a_0.png out/photo_stylized_b_0.png
    nst-transform --checkpoint=arbitrary --style_images=a.jpg,b.jpg --style_weights=0.3,0.7 \
        --strength=0.5,1.0 --input_image=photo.jpg --output_dir=out --output_basename=photo
    # → out/photo_stylized_a_300_b_700_0.png out/photo_stylized_a_300_b_700_1.png

As in Magenta, ``{basename}_stylized_{style}_{i}`` where ``i`` indexes ``--strength`` (Magenta's
``--interpolation_weights``). Unlike Magenta, the content image keeps its size unless
``--image_size`` is given (Magenta's default resizes it to 256), and the output is cropped to
the content size.

``scripts/transform.py`` runs the same ``run()``.
"""

import os

from absl import flags

from magenta_compat.which_styles import format_weight
from nst_tf.cli.runner import (call_reporting_errors, define_tiling_flags, entry_points,
                               parse_numbers, print_error, tiling_options)
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
                      "float32 (Magenta's arithmetic, within 1e-5 of its graph), bfloat16 "
                      "(about 2x faster on CPUs with fast bfloat16 units, slower on some; ~1 "
                      "grey level different) or auto (bfloat16 where a one-time measurement "
                      "finds it faster).", flag_values=flag_values)
    flags.DEFINE_bool("fast", False,
                      "Compute the same network in faster forms (about 1.4x less CPU time); "
                      "outputs within 1e-4 of Magenta's instead of 1e-5.", flag_values=flag_values)
    flags.DEFINE_string("jit_compile", "auto",
                        "XLA compilation: auto (on GPU/TPU only), true or false.",
                        flag_values=flag_values)
    flags.DEFINE_list(
        "style_images", None,
        "Arbitrary-style models: comma-separated style image paths or folders (one output per "
        "style, or one mixture with --style_weights).", flag_values=flag_values)
    flags.DEFINE_list("style_weights", None,
                      "Arbitrary-style models: one non-negative weight per style image; the "
                      "embeddings are mixed with the weights normalized to sum 1.",
                      flag_values=flag_values)
    flags.DEFINE_list("strength", ["1.0"],
                      "Arbitrary-style models: comma-separated stylization strengths in [0, 1] "
                      "(Magenta's --interpolation_weights; 1 = full style), one output each.",
                      flag_values=flag_values)
    flags.DEFINE_integer("style_image_size", 256,
                         "Arbitrary-style models: the style's shorter side is resized to this.",
                         flag_values=flag_values)
    flags.DEFINE_integer("image_size", None,
                         "Arbitrary-style models: resize the content's shorter side to this "
                         "first (default: keep its size; Magenta uses 256).",
                         flag_values=flag_values)
    define_tiling_flags(flag_values)
    flags.mark_flags_as_required(["checkpoint", "input_image", "output_dir", "output_basename"],
                                 flag_values=flag_values)


def transform(checkpoint, input_image, output_dir, output_basename, which_styles="[0]",
              num_styles=None, alpha=None, save_format="png", jit_compile="auto",
              precision="float32", fast=False, tile_size=None, statistics="thumbnail",
              thumbnail_size=1024):
    """Stylize ``input_image`` and write Magenta-named files; returns the paths written.

    With ``tile_size``, each output is made by patches and streamed to its file
    (:func:`nst_tf.stylize_to_file`, with a progress line per patch on stderr).

    Raises:
        NSTError: any bad input (checkpoint, image, which_styles, output folder).
    """
    from magenta_compat.which_styles import parse_which_styles
    from nst_tf import images
    from nst_tf.models.pastiche.family import load_model, num_styles_of, stylize

    if save_format not in _EXTENSIONS:
        raise ConfigError(f"save_format must be one of {sorted(_EXTENSIONS)}, got {save_format!r}")
    if not output_basename or os.sep in output_basename:
        raise ConfigError(f"output_basename must be a plain file name, got {output_basename!r}")
    network = load_model(checkpoint, num_styles=num_styles, alpha=alpha)
    selection = parse_which_styles(which_styles, num_styles_of(network))
    content = images.load_image(input_image)
    names = selection.output_filenames(output_basename, _EXTENSIONS[save_format])
    _check_outputs(output_dir, names, [("--input_image", input_image), ("--checkpoint", checkpoint)])
    options = dict(jit_compile=jit_compile, precision=precision, fast=fast)
    if tile_size is not None:
        os.makedirs(output_dir, exist_ok=True)
        return [_stylize_to_file(content, os.path.join(output_dir, name), vector, network,
                                 tile_size, statistics, thumbnail_size, **options)
                for name, vector in zip(names, selection.vectors)]
    outputs = stylize(content, selection.vectors, model=network, **options)
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, output in zip(names, outputs):
        path = os.path.join(output_dir, name)
        images.save_image(path, images.float_to_uint8(output, rounding="truncate"), quality=95)
        paths.append(path)
    return paths


def _stylize_to_file(content, path, style, network, tile_size, statistics, thumbnail_size,
                     **options):
    """One output by patches, with Magenta's truncating uint8 conversion and progress."""
    from nst_tf.families import stylize_to_file

    return stylize_to_file(content, path, style, network, tile_size=tile_size,
                           statistics=statistics, thumbnail_size=thumbnail_size,
                           rounding="truncate", progress=True, **options)

def _check_outputs(output_dir, names, inputs):
    """Refuse, before any stylization, an output file that is one of the ``inputs``."""
    from nst_tf.io import check_keeps_inputs

    for name in names:
        check_keeps_inputs(os.path.join(output_dir, name), inputs, "--output_dir")


def _style_label(path):
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def transform_arbitrary(checkpoint, input_image, output_dir, output_basename, style_images,
                        style_weights=None, strengths=(1.0,), style_image_size=256,
                        image_size=None, save_format="png", jit_compile="auto", fast=False,
                        tile_size=None, statistics="thumbnail", thumbnail_size=1024):
    """Stylize ``input_image`` with an arbitrary-style model; returns the paths written.

    One file per style image (or one mixture with ``style_weights``) and per strength, named
    ``{output_basename}_stylized_{style}_{i}`` as Magenta's ``..._with_weights`` script does.
    With ``tile_size``, each is made by patches and streamed to its file.
    """
    from nst_tf import images
    from nst_tf.models.arbitrary.family import check_style_weights, load_model, style_sources, stylize

    if save_format not in _EXTENSIONS:
        raise ConfigError(f"save_format must be one of {sorted(_EXTENSIONS)}, got {save_format!r}")
    if not output_basename or os.sep in output_basename:
        raise ConfigError(f"output_basename must be a plain file name, got {output_basename!r}")
    if not strengths:
        raise ConfigError("--strength needs at least one value")
    network = load_model(checkpoint)
    sources = style_sources(list(style_images))
    labels = [_style_label(s) for s in sources]
    if style_weights is not None:
        weights = check_style_weights(style_weights, len(sources))
        labels = ["_".join(f"{label}_{format_weight(w)}" for label, w in zip(labels, weights))]
    names = [f"{output_basename}_stylized_{label}_{i}" + _EXTENSIONS[save_format]
             for i in range(len(strengths)) for label in labels]
    _check_outputs(output_dir, names, [("--input_image", input_image),
                                       ("--checkpoint", checkpoint), ("--style_images", sources)])
    content = images.load_image(input_image)
    os.makedirs(output_dir, exist_ok=True)
    if tile_size is not None:
        styles = [sources] if style_weights is not None else list(sources)
        return [_stylize_to_file(
                    content, os.path.join(output_dir, f"{output_basename}_stylized_{label}_{i}"
                                                      + _EXTENSIONS[save_format]),
                    chosen, network, tile_size, statistics, thumbnail_size,
                    style_weights=style_weights, strength=strength, style_size=style_image_size,
                    size=image_size, jit_compile=jit_compile, fast=fast)
                for i, strength in enumerate(strengths)
                for label, chosen in zip(labels, styles)]
    outputs = []
    for i, strength in enumerate(strengths):
        result = stylize(content, sources, network, style_weights=style_weights,
                         strength=strength, style_size=style_image_size, size=image_size,
                         jit_compile=jit_compile, fast=fast)
        result = result[None] if style_weights is not None else result
        outputs += [(f"{output_basename}_stylized_{label}_{i}", image)
                    for label, image in zip(labels, result)]
    paths = []
    for name, image in outputs:   # every image computed before the first file is written
        path = os.path.join(output_dir, name + _EXTENSIONS[save_format])
        images.save_image(path, images.float_to_uint8(image, rounding="truncate"), quality=95)
        paths.append(path)
    return paths


def execute(flag_values):
    """Run with parsed flags; print the written paths. Returns the exit code (0 or 1)."""
    tiles, code = call_reporting_errors(PROGRAM, tiling_options, flag_values)
    if code:
        return code
    if flag_values.style_images:
        if flag_values["which_styles"].present:
            print_error(PROGRAM, "--which_styles selects styles of a multi-style network; an "
                        "arbitrary-style model takes --style_images (and --style_weights)")
            return 1
        paths, code = call_reporting_errors(PROGRAM, _transform_arbitrary_flags, flag_values,
                                            tiles)
        for path in paths or ():
            print(path)
        return code
    family, code = call_reporting_errors(PROGRAM, _family_of, flag_values.checkpoint)
    if code:
        return code
    if family is not None and family.name == "arbitrary":
        print_error(PROGRAM, f"{flag_values.checkpoint} is an arbitrary-style model: give the "
                    "style images with --style_images (and --style_weights, --strength)")
        return 1
    if family is not None and family.name != "pastiche":
        print_error(PROGRAM, f"{flag_values.checkpoint} is a {family.name} model; nst-transform "
                    "runs multi-style (pastiche) and arbitrary-style models: run this one with "
                    f"{family.runs_with}")
        return 1
    paths, code = call_reporting_errors(
        PROGRAM, transform, flag_values.checkpoint, flag_values.input_image,
        flag_values.output_dir, flag_values.output_basename,
        which_styles=flag_values.which_styles, num_styles=flag_values.num_styles,
        alpha=flag_values.alpha, save_format=flag_values.save_format,
        jit_compile=flag_values.jit_compile, precision=flag_values.precision,
        fast=flag_values.fast, **tiles)
    for path in paths or ():
        print(path)
    return code


def _family_of(checkpoint):
    """The family of the model ``checkpoint`` names (a preset, ``hub:`` handle, tarball,
    checkpoint, ``.keras`` file or train_dir), or None when it cannot be told here (the
    multi-style loader then reports the problem)."""
    from magenta_compat import arbitrary
    from nst_tf import families
    from nst_tf.errors import NSTError
    from nst_tf.io import is_local_path

    if checkpoint is None:
        return None
    if checkpoint.startswith("hub:") or (arbitrary.is_preset(checkpoint)
                                         and not is_local_path(checkpoint)):
        # known without loading (nor downloading) the model
        return next(f for f in families.registered() if f.name == "arbitrary")
    try:
        return families.resolve(checkpoint)[0]
    except (NSTError, OSError):
        return None


def _transform_arbitrary_flags(flag_values, tiles):
    weights = (None if flag_values.style_weights is None
               else parse_numbers(flag_values.style_weights, "style_weights"))
    return transform_arbitrary(
        flag_values.checkpoint, flag_values.input_image, flag_values.output_dir,
        flag_values.output_basename, flag_values.style_images, style_weights=weights,
        strengths=parse_numbers(flag_values.strength, "strength"),
        style_image_size=flag_values.style_image_size, image_size=flag_values.image_size,
        save_format=flag_values.save_format, jit_compile=flag_values.jit_compile,
        fast=flag_values.fast, **tiles)


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

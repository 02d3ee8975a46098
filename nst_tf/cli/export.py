"""``nst-export``: export a multi-style network to a SavedModel folder or a TFLite file.

    nst-export --checkpoint=varied --output=varied_savedmodel
    nst-export --checkpoint=model.ckpt --output=model.tflite --image_size=384 --quantize=dynamic

Both exports take ``image`` float32 ``[1, H, W, 3]`` in [0, 1] and ``style_weights`` float32
``[N]`` (Magenta's TFLite-export interface) and return ``stylized_image``; see
:mod:`nst_tf.export`. The format follows the ``--output`` extension (``.tflite`` → TFLite, anything
else → SavedModel folder) unless ``--format`` is given. ``scripts/export.py`` runs the same
``run()``.

Arbitrary-style models (``--checkpoint=arbitrary``, Magenta's ``arbitrary_style_transfer``
checkpoint, folder or ``.tar.gz``) export as a SavedModel with the interface of Magenta's TF-Hub
module (:func:`nst_tf.models.arbitrary.hub.export_hub_module`), or as two TFLite files
``<output>_prediction.tflite`` (style ``[1, S, S, 3]`` → embedding) and
``<output>_transfer.tflite`` (content + embedding → image); see
:func:`nst_tf.export.export_arbitrary_tflite`.
"""

import os

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points

PROGRAM = "nst-export"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    flags.DEFINE_string("checkpoint", None,
                        "Magenta checkpoint (file, V2 prefix or folder) or a preset name "
                        "('varied', 'monet').", flag_values=flag_values)
    flags.DEFINE_integer("num_styles", None, "Optional check of the checkpoint's number of styles.",
                         flag_values=flag_values)
    flags.DEFINE_string("output", None, "SavedModel folder or .tflite file to write.",
                        flag_values=flag_values)
    flags.DEFINE_enum("format", None, ["saved_model", "tflite"],
                      "Export format; default: tflite for a .tflite output, else saved_model.",
                      flag_values=flag_values)
    flags.DEFINE_integer("image_size", 384, "TFLite only: the fixed (square) input size.",
                         flag_values=flag_values)
    flags.DEFINE_enum("quantize", "none", ["none", "dynamic", "float16"],
                      "TFLite only: none (float32), dynamic (int8 weights) or float16 weights.",
                      flag_values=flag_values)
    flags.DEFINE_integer("style_image_size", 256,
                         "TFLite export of an arbitrary-style model: the fixed (square) style "
                         "input size.", flag_values=flag_values)
    flags.mark_flags_as_required(["checkpoint", "output"], flag_values=flag_values)


def _arbitrary_model(checkpoint):
    """The arbitrary-style network of ``checkpoint``, or None for another kind of model."""
    from nst_tf.families import resolve

    family, network = resolve(checkpoint)
    return network if family.name == "arbitrary" else None


def export(checkpoint, output, format=None, image_size=384, quantize="none", num_styles=None,
           style_image_size=256):
    """Load ``checkpoint`` and export it to ``output``; returns the path(s) written. An
    ``output`` that is the checkpoint or a folder holding it is refused (it would replace it)."""
    from nst_tf import export as exporting
    from nst_tf.io import check_not_replacing
    from nst_tf.models.pastiche.family import load_model

    for source in (checkpoint, f"{checkpoint}.index"):   # a file or folder, or a V2 prefix
        if os.path.exists(source):
            check_not_replacing(output, source, "--output", "it is the --checkpoint exported")
    if format is None:
        format = "tflite" if str(output).lower().endswith(".tflite") else "saved_model"
    arbitrary = _arbitrary_model(checkpoint)
    if arbitrary is not None:
        if format == "tflite":
            return exporting.export_arbitrary_tflite(
                arbitrary, output, image_size=image_size, style_size=style_image_size,
                quantize=None if quantize == "none" else quantize)
        return exporting.export_saved_model(arbitrary, output)
    network = load_model(checkpoint, num_styles=num_styles)
    if format == "tflite":
        return exporting.export_tflite(network, output, image_size=image_size,
                                       quantize=None if quantize == "none" else quantize)
    return exporting.export_saved_model(network, output)


def execute(flag_values):
    """Run with parsed flags; print the written path. Returns the exit code (0 or 1)."""
    path, code = call_reporting_errors(
        PROGRAM, export, flag_values.checkpoint, flag_values.output, format=flag_values.format,
        image_size=flag_values.image_size, quantize=flag_values.quantize,
        num_styles=flag_values.num_styles, style_image_size=flag_values.style_image_size)
    if code == 0:
        for written in [path] if isinstance(path, str) else path:
            print(written)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

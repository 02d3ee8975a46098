"""``nst-export``: export a multi-style network to a SavedModel folder or a TFLite file.

    nst-export --checkpoint=varied --output=varied_savedmodel
    nst-export --checkpoint=model.ckpt --output=model.tflite --image_size=384 --quantize=dynamic

Both exports take ``image`` float32 ``[1, H, W, 3]`` in [0, 1] and ``style_weights`` float32
``[N]`` (Magenta's TFLite-export interface) and return ``stylized_image``; see
:mod:`nst_tf.export`. The format follows the ``--output`` extension (``.tflite`` → TFLite, anything
else → SavedModel folder) unless ``--format`` is given. ``scripts/export.py`` runs the same
:func:`run`.
"""

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
    flags.mark_flags_as_required(["checkpoint", "output"], flag_values=flag_values)


def export(checkpoint, output, format=None, image_size=384, quantize="none", num_styles=None):
    """Load ``checkpoint`` and export it to ``output``; returns the path written."""
    from nst_tf import export as exporting
    from nst_tf.pastiche import load_model

    if format is None:
        format = "tflite" if str(output).lower().endswith(".tflite") else "saved_model"
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
        num_styles=flag_values.num_styles)
    if code == 0:
        print(path)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

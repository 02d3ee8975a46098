"""``nst-export``: export a network to a SavedModel folder or a TFLite file.

    nst-export --checkpoint=varied --output=varied_savedmodel
    nst-export --checkpoint=model.ckpt --output=model.tflite --image_size=384 --quantize=dynamic
    nst-export --checkpoint=runs/starry --output=starry.tflite --image_size=256   # a train_dir

``--checkpoint`` is any model :func:`nst_tf.stylize` takes: a preset, a Magenta checkpoint, a
``.keras`` file or the train_dir of an ``nst-train`` run. Multi-style exports take ``image``
float32 ``[1, H, W, 3]`` in [0, 1] and ``style_weights`` float32 ``[N]`` (Magenta's
TFLite-export interface) and return ``stylized_image``; single-style (Johnson) networks take
``image`` only; see :mod:`nst_tf.export`. AdaIN and texture networks have no such export: a
one-line error says how to run them. The format follows the ``--output`` extension (``.tflite`` → TFLite, anything
else → SavedModel folder) unless ``--format`` is given. ``scripts/export.py`` runs the same
``run()``.

Arbitrary-style models (``--checkpoint=arbitrary``, Magenta's ``arbitrary_style_transfer``
checkpoint, folder or ``.tar.gz``) export as a SavedModel with the interface of Magenta's TF-Hub
module (:func:`nst_tf.models.arbitrary.hub.export_hub_module`), or as two TFLite files
``<output>_prediction.tflite`` (style ``[1, S, S, 3]`` → embedding) and
``<output>_transfer.tflite`` (content + embedding → image); see
:func:`nst_tf.export.export_arbitrary_tflite`.
"""

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points

PROGRAM = "nst-export"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    flags.DEFINE_string("checkpoint", None,
                        "The model: a Magenta checkpoint (file, V2 prefix or folder), a preset "
                        "name ('varied', 'monet', 'arbitrary'), a .keras file or an nst-train "
                        "train_dir.", flag_values=flag_values)
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


def export(checkpoint, output, format=None, image_size=384, quantize="none", num_styles=None,
           style_image_size=256):
    """Load ``checkpoint`` (any model :func:`nst_tf.stylize` takes) and export it to ``output``;
    returns the path(s) written. Networks of families without such an export (AdaIN, texture)
    are a one-line ConfigError that says how to run them."""
    from nst_tf import export as exporting
    from nst_tf.families import resolve
    from nst_tf.models.pastiche.family import load_model

    if format is None:
        format = "tflite" if str(output).lower().endswith(".tflite") else "saved_model"
    _, network = resolve(checkpoint)
    if num_styles is not None:   # a check of a multi-style model's count, as nst-transform's
        load_model(network, num_styles=num_styles)
    if format == "tflite":
        return exporting.export_tflite(network, output, image_size=image_size,
                                       quantize=None if quantize == "none" else quantize,
                                       style_size=style_image_size)
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

"""``nst-export``: convert a model to a SavedModel folder, a TFLite file, a ``.keras`` file or
Magenta's checkpoint format.

    nst-export --model=varied --output=varied_savedmodel
    nst-export --model=model.ckpt --output=model.tflite --image_size=384 --quantize=dynamic
    nst-export --model=runs/starry --output=starry.tflite --image_size=256   # a train_dir
    nst-export --model=mobile_model/ --format=keras --output=mobile.keras
    nst-export --model=arbitrary-mobile --format=magenta --output=mobile_ckpt/model.ckpt

``--model`` (or its older name ``--checkpoint``) is anything :func:`nst_tf.stylize` takes: a
preset, a Magenta checkpoint, a ``.keras`` file, the train_dir of an ``nst-train`` run, or a
folder holding Magenta's mobile model as TF Lite / ONNX files. ``--format``: ``saved_model``,
``tflite``, ``keras`` (:func:`nst_tf.export.export_keras`) or ``magenta``
(:func:`nst_tf.export.export_magenta_checkpoint`: a checkpoint prefix Magenta's scripts
restore); by default it follows the ``--output`` extension (``.tflite``, ``.keras``, else a
SavedModel folder). AdaIN and texture networks have no such export: a one-line error says how
to run them.

Multi-style SavedModel / TFLite exports take ``image`` float32 ``[1, H, W, 3]`` in [0, 1] and
``style_weights`` float32 ``[N]`` (Magenta's TFLite-export interface) and return
``stylized_image``; see :mod:`nst_tf.export`. ``scripts/export.py`` runs the same ``run()``.

Arbitrary-style models (``arbitrary``, ``arbitrary-mobile``, Magenta's checkpoints, folders,
``.tar.gz``) export as a SavedModel with the interface of Magenta's TF-Hub
module (:func:`nst_tf.models.arbitrary.hub.export_hub_module`), or as two TFLite files
``<output>_prediction.tflite`` (style ``[1, S, S, 3]`` → embedding) and
``<output>_transfer.tflite`` (content + embedding → image); see
:func:`nst_tf.export.export_arbitrary_tflite`.
"""

import os

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points, print_error

PROGRAM = "nst-export"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    flags.DEFINE_string("model", None,
                        "The model: a preset name ('varied', 'monet', 'arbitrary', "
                        "'arbitrary-mobile'), a Magenta checkpoint (file, V2 prefix or folder), "
                        "a .keras file, an nst-train train_dir, or a folder holding Magenta's "
                        "mobile model as TF Lite / ONNX files.", flag_values=flag_values)
    flags.DEFINE_string("checkpoint", None, "Older name of --model.", flag_values=flag_values)
    flags.DEFINE_integer("num_styles", None, "Optional check of the checkpoint's number of styles.",
                         flag_values=flag_values)
    flags.DEFINE_string("output", None, "SavedModel folder, .tflite or .keras file, or "
                        "Magenta checkpoint prefix to write.", flag_values=flag_values)
    flags.DEFINE_enum("format", None, list(FORMATS),
                      "Export format; default: tflite for a .tflite output, keras for a .keras "
                      "output, else saved_model. magenta: Magenta's checkpoint format.",
                      flag_values=flag_values)
    flags.DEFINE_integer("image_size", 384, "TFLite only: the fixed (square) input size.",
                         flag_values=flag_values)
    flags.DEFINE_enum("quantize", "none", ["none", "dynamic", "float16"],
                      "TFLite only: none (float32), dynamic (int8 weights) or float16 weights.",
                      flag_values=flag_values)
    flags.DEFINE_integer("style_image_size", 256,
                         "TFLite export of an arbitrary-style model: the fixed (square) style "
                         "input size.", flag_values=flag_values)
    flags.mark_flags_as_required(["output"], flag_values=flag_values)


#: ``--format`` values and the output extension that implies each (None: only by name).
FORMATS = {"saved_model": None, "tflite": ".tflite", "keras": ".keras", "magenta": None}


def _tflite(network, output, image_size, quantize, style_image_size):
    from nst_tf import export as exporting

    return exporting.export_tflite(network, output, image_size=image_size,
                                   quantize=None if quantize == "none" else quantize,
                                   style_size=style_image_size)


def _writers():
    """``{format: write(network, output, **options)}``."""
    from nst_tf import export as exporting

    return {"saved_model": lambda net, out, **_: exporting.export_saved_model(net, out),
            "keras": lambda net, out, **_: exporting.export_keras(net, out),
            "magenta": lambda net, out, **_: exporting.export_magenta_checkpoint(
                net, out),
            "tflite": _tflite}


def _written(output, format):
    """The paths an export as ``format`` may write (an arbitrary-style model's TFLite export is
    two files, a Magenta checkpoint a prefix's files)."""
    from nst_tf.export import arbitrary_tflite_paths

    extra = {"tflite": arbitrary_tflite_paths(output),
             "magenta": [f"{output}.index", f"{output}.data-00000-of-00001", f"{output}.meta"]}
    return [output, *extra.get(format, ())]


def export(checkpoint, output, format=None, image_size=384, quantize="none", num_styles=None,
           style_image_size=256):
    """Load the model ``checkpoint`` (anything ``--model`` takes) and export it to ``output``
    as ``format``; returns the path(s) written. An ``output`` that is the checkpoint or a folder
    holding it is refused (it would replace it). Networks of families without such an export
    (AdaIN, texture) are a one-line ConfigError that says how to run them."""
    from nst_tf.families import resolve
    from nst_tf.io import SAVED_MODEL_FILE, check_keeps_inputs, check_replaceable_folder
    from nst_tf.models.pastiche.family import load_model

    if format is None:
        format = next((name for name, ext in FORMATS.items()
                       if ext and str(output).lower().endswith(ext)), "saved_model")
    for written in _written(output, format):
        check_keeps_inputs(written, [("--model", checkpoint)])
    if format == "saved_model":
        check_replaceable_folder(output, SAVED_MODEL_FILE)
    _, network = resolve(checkpoint)
    if num_styles is not None:   # a check of a multi-style model's count, as nst-transform's
        load_model(network, num_styles=num_styles)
    return _writers()[format](network, output, image_size=image_size, quantize=quantize,
                              style_image_size=style_image_size)


def execute(flag_values):
    """Run with parsed flags; print the written path. Returns the exit code (0 or 1)."""
    if (flag_values.model is None) == (flag_values.checkpoint is None):
        print_error(PROGRAM, "give the model to export with --model (or its older name "
                             "--checkpoint), once")
        return 1
    path, code = call_reporting_errors(
        PROGRAM, export, flag_values.model or flag_values.checkpoint, flag_values.output,
        format=flag_values.format, image_size=flag_values.image_size,
        quantize=flag_values.quantize, num_styles=flag_values.num_styles,
        style_image_size=flag_values.style_image_size)
    if code == 0:
        for written in [path] if isinstance(path, str) else path:
            print(written)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

"""``nst-train``: train a feed-forward style network (Johnson, Dumoulin CIN, fine-tune, AdaIN,
Ulyanov et al.'s texture networks, Ghiasi et al.'s arbitrary-style network).

Flags follow Magenta's ``image_stylization_train`` / ``_finetune`` where they overlap::

    nst-train --mode=cin --content_images="imagenet/train-*" --style_images="styles/*.jpg" \\
        --train_dir=runs/cin --batch_size=16 --image_size=256 --train_steps=40000

    nst-train --mode=finetune --checkpoint=varied --style_images=new_style.jpg \\
        --content_images=photos/ --train_dir=runs/varied_plus_one

    nst-train --mode=johnson --style_images=starry.jpg --content_images=photos/ \\
        --train_dir=runs/starry --style_size=512 --tv_weight=1e-2

    nst-train --mode=adain --content_images=coco/ --style_images=wikiart/ \\
        --train_dir=runs/adain --batch_size=8 --train_steps=160000   # pytorch-AdaIN's recipe

    nst-train --mode=texture --style_images=bricks.jpg --train_dir=runs/bricks \\
        --export_keras=bricks.keras                   # then nst_tf.synthesize("bricks.keras", ...)

    nst-train --mode=texture_stylize --style_images=starry.jpg --content_images=photos/ \\
        --train_dir=runs/starry_tn --diversity_weight=1 --export_keras=starry_tn.keras

    nst-train --mode=arbitrary --content_images=imagenet/ --style_images=paintings/ \\
        --train_dir=runs/arbitrary --batch_size=8 --export_magenta=arbitrary/model.ckpt

    nst-train --mode=distill --checkpoint=arbitrary --content_images=imagenet/ \\
        --style_images=paintings/ --train_dir=runs/distill --batch_size=8  # Magenta's distill

    nst-train --mode=arbitrary --predictor=mobilenet_v2 --content_images=imagenet/ \\
        --style_images=paintings/ --train_dir=runs/mobile --export_tflite=mobile_tflite

* Running the same command again resumes from ``--train_dir`` (step, weights, optimizer state,
  data position); a different set-up there (mode, architecture, ``--style_images``) is refused.
  Ctrl-C saves a checkpoint and stops with exit status 130; run again to continue.
* ``--content_weights`` / ``--style_weights`` are JSON objects ``{layer: weight}``; layers are
  Magenta end points (``vgg_16/conv3``), Keras names (``block3_conv3``) or Caffe aliases
  (``relu3_3``). Defaults are Magenta's; the texture modes default to the paper's setting
  (VGG-19, Gram loss on relu1_1 … relu5_1, content relu4_2 for stylization, Adam 0.1 with ×0.7
  every 200 steps after 800, 2000 steps); ``--learning_rate``, ``--train_steps``, ``--backbone``
  and ``--pooling`` override them.
* TensorBoard summaries go to ``--logdir`` (default ``<train_dir>/logs``; the name ``--log_dir``
  belongs to absl's own logging flags).
* ``--export_magenta`` (cin / finetune / arbitrary / distill), ``--export_saved_model`` and
  ``--export_keras`` (every mode) write the trained network at the end; ``--export_tflite``
  (distill, and arbitrary with the MobileNetV2 predictor) writes Magenta's mobile TF Lite pairs
  ``int8/`` (calibrated on ``--tflite_samples`` training images) and ``fp16/``, with the
  published files' inputs and outputs (:func:`nst_tf.export.export_mobile_tflite`); their folders are
  created (and checked) before the first step. An export that is the ``--train_dir`` or a
  folder holding it, or a Magenta export into the train_dir (its ``checkpoint`` file would
  replace the run's), is refused before training.
* ``--checkpoint`` and the model flags take a preset name; a local file or folder of the same
  name wins over the preset, and a one-line note on stderr says so.
* ``--strategy=multi_worker``: run the same command on every host, each with its ``TF_CONFIG``
  (docs: "Training on several machines"). The strategy is created before anything else;
  the chief (task 0) writes checkpoints, summaries and exports; a lost worker stops the others
  with one line naming it, and running every worker again resumes. At start-up each worker
  waits for the others (saying for whom) up to ``--startup_timeout`` seconds; Ctrl-C there
  exits with 130, SIGTERM with 143; workers whose ``TF_CONFIG`` clusters differ stop with one
  line naming both.
* Each mode is a recipe (:mod:`nst_tf.training.recipe`) that declares the options it takes; a
  flag given for a mode that does not take it is an error naming the modes that do
  (``--tv_weight does not apply to --mode=adain; it applies to --mode=arbitrary, cin, ...``).
  Errors are one line on stderr, exit code 1.

``scripts/train.py`` runs the same ``run()``.
"""

import os
import sys

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points

PROGRAM = "nst-train"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("content_images", None,
                        "Content images: glob pattern(s), folder(s) or ImageNet TFRecords "
                        "(train-*), comma-separated (not used by --mode=texture).", **fv)
    flags.DEFINE_string("style_images", None,
                        "Style images: paths or glob patterns, comma-separated; label i is the "
                        "i-th in sorted order.", **fv)
    flags.DEFINE_string("train_dir", None,
                        "Folder for checkpoints, logs and train_config.json; an existing run "
                        "there is resumed.", **fv)
    from nst_tf.training.recipe import modes, recipe_class

    flags.DEFINE_enum("mode", "cin", list(modes()),
                      "; ".join(f"{mode}: {recipe_class(mode).summary}" for mode in modes())
                      + ".", **fv)
    flags.DEFINE_enum("encoder", "normalised", ["normalised", "keras"],
                      "adain: the encoder: the published normalised VGG-19 (--weights: "
                      "imagenet = the released vgg_normalised.pth, random, or a .pth) or "
                      "keras.applications.VGG19 (imagenet, random or a .h5).", **fv)
    flags.DEFINE_string("init_decoder", None,
                        "adain: start from this decoder (pytorch-AdaIN decoder.pth or an AdaIN "
                        ".keras file).", **fv)
    flags.DEFINE_float("lr_decay", 5e-5, "adain: learning rate lr / (1 + lr_decay * step).",
                       **fv)
    flags.DEFINE_string("checkpoint", None,
                        "finetune: the pastiche checkpoint to extend (file, folder or preset "
                        "name such as 'varied'); arbitrary: start from this arbitrary-style "
                        "model (a Magenta checkpoint, 'arbitrary', 'arbitrary-mobile', a "
                        "folder, a train_dir) instead of ImageNet weights; distill: the teacher "
                        "(default 'arbitrary').", **fv)
    flags.DEFINE_integer("batch_size", 16, "Global batch size.", **fv)
    flags.DEFINE_integer("image_size", 256, "Side of the square content crops.", **fv)
    flags.DEFINE_integer("style_size", None,
                         "Resize style images so their shorter side is this (default: native "
                         "size, as Magenta).", **fv)
    flags.DEFINE_float("learning_rate", None, "Adam learning rate (default 1e-3; adain: 1e-4; "
                       "texture modes 0.1; arbitrary, distill 1e-5).", **fv)
    flags.DEFINE_integer("train_steps", None, "Total training steps including resumed ones "
                         "(default 40000; texture modes 2000; arbitrary, distill 8000000).", **fv)
    flags.DEFINE_string("content_weights", None,
                        'JSON {layer: weight}; default \'{"vgg_16/conv3": 1.0}\'.', **fv)
    flags.DEFINE_string("style_weights", None,
                        'JSON {layer: weight}; default 1e-4 on vgg_16/conv1..conv4 (arbitrary: '
                        '0.5e-3).', **fv)
    flags.DEFINE_float("tv_weight", None, "Total-variation weight (default 0 as Magenta's CIN "
                       "training; arbitrary: 1e4, Magenta's total_variation_weight).", **fv)
    flags.DEFINE_enum("backbone", None, ["vgg16", "vgg19"],
                      "Loss network (default vgg16; texture modes vgg19).", **fv)
    flags.DEFINE_enum("pooling", None, ["avg", "max"],
                      "Loss network pooling (default avg as Magenta; texture modes max).", **fv)
    flags.DEFINE_enum("preprocessing", "magenta", ["magenta", "keras"],
                      "Loss network input preprocessing (magenta: x*255 - Magenta's RGB mean, "
                      "in the BGR order of Keras' VGG weights).", **fv)
    flags.DEFINE_string("weights", "imagenet",
                        "Loss network weights: imagenet (Keras cache), random, or a local .h5 "
                        "(adain: the encoder's; arbitrary: also the style trunk's start; "
                        "distill: the MobileNetV2 start, and the loss network of "
                        "--true_loss_weight).", **fv)
    flags.DEFINE_float("alpha", None, "Width multiplier of a new network (default 1; arbitrary "
                       "with --predictor=mobilenet_v2: 0.25; finetune: a check of the "
                       "checkpoint's).", **fv)
    flags.DEFINE_float("depth_multiplier", None, "arbitrary, distill: width multiplier of the "
                       "style trunk (default 1; ImageNet weights need 1).", **fv)
    flags.DEFINE_enum("predictor", None, ["inception_v3", "mobilenet_v2"],
                      "arbitrary: the style trunk: inception_v3 (default; Magenta's train) or "
                      "mobilenet_v2 (Magenta's train_mobile: the style network frozen, the "
                      "transformer at --alpha 0.25 by default).", **fv)
    flags.DEFINE_float("true_loss_weight", None, "distill: weight of the arbitrary-style "
                       "loss added to the embedding error (default 0; Magenta's "
                       "--use_true_loss uses 1e-9).", **fv)
    flags.DEFINE_boolean("augment_style_images", None, "arbitrary: random size, crop, colour "
                         "and flips of the style images (default true, as Magenta).", **fv)
    flags.DEFINE_boolean("random_style_image_size", None, "arbitrary: resize each style batch "
                         "to a random size (default true, as Magenta).", **fv)
    flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                      "Mixed precision for the trained network (loss network stays float32).",
                      **fv)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "one_device", "multi_worker"],
                      "tf.distribute strategy; mirrored uses every GPU (or CPU device); "
                      "multi_worker trains on the cluster of the TF_CONFIG environment variable "
                      "(run the same command on every worker; --batch_size stays global).", **fv)
    flags.DEFINE_float("collective_timeout", None,
                       "multi_worker: seconds after which a step waiting for a stuck worker "
                       "fails (default none: dead workers are still detected within about "
                       "10 s). Make it longer than the chief's checkpoint writes.", **fv)
    flags.DEFINE_float("startup_timeout", 600,
                       "multi_worker: seconds to wait for every worker of TF_CONFIG's cluster "
                       "to start (0: for ever); the wait names the workers it waits for and "
                       "stops on Ctrl-C or SIGTERM.", lower_bound=0, **fv)
    flags.DEFINE_string("jit_compile", "auto", "XLA: auto (GPU/TPU only), true or false.", **fv)
    flags.DEFINE_integer("seed", 0, "Seed of initialization, data order, crops and labels.", **fv)
    flags.DEFINE_integer("save_every", 1000, "Checkpoint every this many steps (0: only at the "
                         "end and on Ctrl-C).", **fv)
    # Not "--log_dir": absl.logging owns that flag name (its text log folder).
    flags.DEFINE_string("logdir", None,
                        "TensorBoard folder (default <train_dir>/logs; '' disables).", **fv)
    flags.DEFINE_integer("summary_every", 100, "TensorBoard scalars every N steps (images every "
                         "10N and at the end).", **fv)
    flags.DEFINE_string("export_magenta", None,
                        "At the end, write a Magenta checkpoint here (cin / finetune: "
                        "image_stylization; arbitrary: arbitrary_image_stylization).", **fv)
    flags.DEFINE_string("export_saved_model", None, "At the end, write a SavedModel here.", **fv)
    flags.DEFINE_string("export_keras", None, "At the end, write the network as a .keras file "
                        "(every mode).", **fv)
    flags.DEFINE_string("export_tflite", None,
                        "distill, arbitrary with --predictor=mobilenet_v2: at the end, write "
                        "Magenta's mobile TF Lite files into this folder: int8/ (calibrated on "
                        "training images) and fp16/, each prediction.tflite + transfer.tflite.",
                        **fv)
    flags.DEFINE_integer("tflite_image_size", 384, "--export_tflite: the transfer file's "
                         "content size (Magenta's default 384; the prediction file takes 256).",
                         **fv)
    flags.DEFINE_integer("tflite_samples", 100, "--export_tflite: style images calibrating the "
                         "int8 prediction file; the transfer file takes 3x as many content "
                         "images (Magenta's 100 and 300).", **fv)
    # Texture networks (Ulyanov et al. 2016, 2017).
    flags.DEFINE_integer("num_scales", 6, "Texture modes: number of scales K (sizes are "
                         "multiples of 2^(K-1)).", **fv)
    flags.DEFINE_integer("texture_channels", 8, "Texture modes: conv channels per scale.", **fv)
    flags.DEFINE_enum("norm", "batch", ["batch", "instance"],
                      "Texture modes: batch norm (2016) or instance norm (2017).", **fv)
    flags.DEFINE_enum("padding", "auto", ["auto", "circular", "reflect"],
                      "Texture modes: circular (tileable; default for texture) or reflect "
                      "(default for texture_stylize).", **fv)
    flags.DEFINE_float("diversity_weight", None, "Weight of the 2017 diversity (entropy) term; "
                       "needs --batch_size >= 2.", **fv)
    flags.DEFINE_string("diversity_layer", None, "Embedding of the diversity term: pixels "
                        "or a loss-network layer (e.g. relu4_2); default pixels.", **fv)
    flags.DEFINE_enum("lr_schedule", None, ["constant", "ulyanov"],
                      "Learning-rate schedule (default constant; texture modes ulyanov: x0.7 "
                      "every 200 steps after 800).", **fv)
    flags.DEFINE_integer("verbose", 1, "0: silent, 1: progress bar, 2: one line per epoch.", **fv)
    flags.mark_flags_as_required(["style_images", "train_dir"], **fv)


#: Flags that are not options of ``train()`` under their own name: flag -> option.
_OPTION_OF_FLAG = {"logdir": "log_dir", "tflite_image_size": "export_tflite",
                   "tflite_samples": "export_tflite", "num_scales": "network_options",
                   "texture_channels": "network_options", "norm": "network_options",
                   "padding": "network_options"}
#: Flags of the command itself, taken by every mode.
_COMMAND_FLAGS = ("mode", "train_dir", "export_saved_model", "export_keras")


def _program_flags():
    names = flags.FlagValues()
    define_flags(names)
    return [name for name in names if name not in _COMMAND_FLAGS]


def mode_options(flag_values):
    """``train()``'s keyword options from the parsed flags for ``--mode``.

    A flag given on the command line that the mode does not take is a ConfigError naming the
    modes that take it (from the recipes' declared options,
    :meth:`nst_tf.training.Recipe.takes`). Flags left at None are not passed (the mode's
    default applies).
    """
    from nst_tf.errors import ConfigError
    from nst_tf.training.recipe import not_taken_message, recipe_class

    fv = flag_values
    recipe = recipe_class(fv.mode)
    options = {}
    for name in _program_flags():
        option = _OPTION_OF_FLAG.get(name, name)
        if not recipe.takes(option):
            if fv[name].present:
                raise ConfigError(not_taken_message(fv.mode, option, flag=name))
            continue
        value = getattr(fv, name)
        if value is not None and option not in ("network_options", "export_magenta",
                                                 "export_tflite"):
            options[option] = value
    if options.get("mixed_precision") == "none":
        options.pop("mixed_precision")
    if recipe.takes("network_options"):
        options["network_options"] = {
            "num_scales": fv.num_scales, "channels": fv.texture_channels, "norm": fv.norm,
            "seed": fv.seed, "padding": None if fv.padding == "auto" else fv.padding}
    options.setdefault("content_images", None)
    return options


def check_exports_keep_the_train_dir(flag_values):
    """Refuse, before training, an export that would destroy the run it exports or what it
    reads: a SavedModel or ``.keras`` path that is the train_dir or holds it, a Magenta
    checkpoint in the train_dir (its ``checkpoint`` state file would replace the one the run
    resumes from), an export that is (or holds) an input (images, checkpoint, weights), and a
    SavedModel path that is a folder of other files."""
    from nst_tf.errors import ConfigError
    from nst_tf.io import (SAVED_MODEL_FILE, check_keeps_inputs, check_not_replacing,
                           check_replaceable_folder, same_file)

    fv = flag_values
    for name in ("export_saved_model", "export_keras", "export_tflite"):
        if fv[name].value:
            check_not_replacing(fv[name].value, fv.train_dir, f"--{name}",
                                "the --train_dir of this run, with its checkpoints")
    inputs = _inputs(fv)
    for name in ("export_saved_model", "export_keras", "export_magenta"):
        for written in _export_paths(fv[name].value, name):
            check_keeps_inputs(written, inputs, f"--{name}")
    if fv.export_saved_model:
        check_replaceable_folder(fv.export_saved_model, SAVED_MODEL_FILE)
    if fv.export_magenta and same_file(os.path.dirname(os.path.abspath(fv.export_magenta)),
                                       fv.train_dir):
        raise ConfigError(f"--export_magenta={fv.export_magenta} is in --train_dir="
                          f"{fv.train_dir}: its 'checkpoint' file would replace the one this run "
                          "resumes from; export to another folder")


def _inputs(fv):
    """The ``(flag, paths)`` a training run reads (globs expanded)."""
    import glob

    def paths(value):
        return [found for part in (value or "").split(",") if part.strip()
                for found in (glob.glob(part.strip()) or [part.strip()])]

    return [("--content_images", paths(fv.content_images)),
            ("--style_images", paths(fv.style_images)), ("--checkpoint", fv.checkpoint),
            ("--init_decoder", fv.init_decoder), ("--weights", fv.weights)]


def _export_paths(path, name):
    """The paths an ``--export_*`` writes (a Magenta checkpoint is a prefix's files)."""
    if not path:
        return []
    if name == "export_magenta":
        return [path, f"{path}.index", f"{path}.data-00000-of-00001", f"{path}.meta"]
    return [path]


def prepare_exports(flag_values):
    """Check the ``--export_*`` paths before the first training step, and create their missing
    folders: a path that cannot be written fails now, not after hours of training.

    Raises:
        ConfigError: an ``--export_keras`` name without ``.keras``.
        OutputPathError: a folder that cannot be created (a file is in the way, no permission).
    """
    from nst_tf.errors import ConfigError
    from nst_tf.io import OutputPathError

    fv = flag_values
    if fv.export_keras and not fv.export_keras.endswith(".keras"):
        raise ConfigError(f"--export_keras must name a .keras file, got {fv.export_keras!r}")
    for name in ("export_magenta", "export_saved_model", "export_keras", "export_tflite"):
        path = fv[name].value
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path.rstrip("/\\")))
        blocking = next((p for p in _ancestors(folder) if os.path.isfile(p)), None)
        if blocking:
            raise OutputPathError(f"--{name}={path}: {blocking} is a file, not a folder")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OutputPathError(f"--{name}={path}: cannot create the folder {folder} "
                                  f"({e.strerror or e})") from None
        if not os.access(folder, os.W_OK):
            raise OutputPathError(f"--{name}={path}: the folder {folder} is not writable")


def _ancestors(folder):
    """``folder`` and the folders above it."""
    while True:
        yield folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def train_and_export(flag_values):
    """Train with the parsed flags, then export; returns ``(network, exported paths)``."""
    from nst_tf import export, training

    fv = flag_values
    check_exports_keep_the_train_dir(fv)
    options = mode_options(fv)
    if fv.export_tflite:
        from nst_tf.training.recipe import recipe_class

        recipe_class(fv.mode).check_tflite_export(options)
    prepare_exports(fv)
    # Before any TensorFlow op (VGG, images): MultiWorkerMirroredStrategy needs that.
    options["strategy"] = training.make_strategy(options.get("strategy", "default"),
                                                 options.pop("collective_timeout", None),
                                                 options.pop("startup_timeout", None) or None)
    network = training.train(options.pop("content_images"), options.pop("style_images"),
                             fv.train_dir, mode=fv.mode, **options)
    exported = list(network.written)
    if not network.worker.is_chief:    # the chief writes the exports
        return network, exported
    if fv.export_magenta and not network.interrupted:
        exported.append(export.export_magenta_checkpoint(network, fv.export_magenta))
    if fv.export_saved_model and not network.interrupted:
        exported.append(export.export_saved_model(network, fv.export_saved_model))
    if fv.export_keras and not network.interrupted:
        exported.append(export.export_keras(network, fv.export_keras))
    if fv.export_tflite and not network.interrupted:
        from nst_tf.cli import quiet
        from nst_tf.images import split_sources

        # The TF Lite calibrator prints its settings ("fully_quantize: 0, inference_type: ...").
        quiet.drop_lines(lambda line: line.startswith(b"fully_quantize: "))

        exported.extend(export.export_mobile_tflite(
            network, fv.export_tflite, split_sources(fv.style_images),
            split_sources(fv.content_images) if fv.content_images else None,
            image_size=fv.tflite_image_size, samples=fv.tflite_samples, seed=fv.seed))
    return network, exported


def execute(flag_values):
    """Run with parsed flags; print where things went. Returns the exit code: 0, 1 (an error)
    or 130 (stopped by Ctrl-C after saving a checkpoint; the same command resumes); 130 or 143
    for Ctrl-C or SIGTERM while the workers of a multi-worker run wait for each other."""
    from nst_tf.training.rendezvous import StartupInterrupted

    try:
        result, code = call_reporting_errors(PROGRAM, train_and_export, flag_values)
    except StartupInterrupted as e:       # Ctrl-C or SIGTERM before the workers met
        print(f"{PROGRAM}: {e}; nothing was trained", file=sys.stderr)
        return 128 + e.signum
    if result is None:
        return code
    network, exported = result
    where = f"checkpoints in {flag_values.train_dir}" if network.worker.is_chief else \
        f"{network.worker.name}; the chief writes checkpoints and exports"
    if network.interrupted:
        print(f"{PROGRAM}: interrupted at step {network.final_step}; {where} (run the same "
              "command again to resume)", file=sys.stderr)
        return 130
    print(f"{PROGRAM}: done at step {network.final_step}; {where}")
    for path in exported:
        print(path)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

"""``nst-train``: train a feed-forward style network (Johnson, Dumoulin CIN, or fine-tune).

Flags follow Magenta's ``image_stylization_train`` / ``_finetune`` where they overlap::

    nst-train --mode=cin --content_images="imagenet/train-*" --style_images="styles/*.jpg" \\
        --train_dir=runs/cin --batch_size=16 --image_size=256 --train_steps=40000

    nst-train --mode=finetune --checkpoint=varied --style_images=new_style.jpg \\
        --content_images=photos/ --train_dir=runs/varied_plus_one

    nst-train --mode=johnson --style_images=starry.jpg --content_images=photos/ \\
        --train_dir=runs/starry --style_size=512 --tv_weight=1e-2

    nst-train --mode=adain --content_images=coco/ --style_images=wikiart/ \\
        --train_dir=runs/adain --batch_size=8 --train_steps=160000   # pytorch-AdaIN's recipe

* Running the same command again resumes from ``--train_dir`` (step, weights, optimizer state,
  data position). Ctrl-C saves a checkpoint and stops; run again to continue.
* ``--content_weights`` / ``--style_weights`` are JSON objects ``{layer: weight}``; layers are
  Magenta end points (``vgg_16/conv3``), Keras names (``block3_conv3``) or Caffe aliases
  (``relu3_3``). Defaults are Magenta's.
* TensorBoard summaries go to ``--logdir`` (default ``<train_dir>/logs``; the name ``--log_dir``
  belongs to absl's own logging flags).
* ``--export_magenta`` (CIN / finetune) and ``--export_saved_model`` write the trained network at
  the end. Errors are one line on stderr, exit code 1.

``scripts/train.py`` runs the same :func:`run`.
"""

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points

PROGRAM = "nst-train"


def define_flags(flag_values=flags.FLAGS):
    """Define the flags on ``flag_values`` (the global ``FLAGS`` for the console script)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("content_images", None,
                        "Content images: glob pattern(s), folder(s) or ImageNet TFRecords "
                        "(train-*), comma-separated.", **fv)
    flags.DEFINE_string("style_images", None,
                        "Style images: paths or glob patterns, comma-separated; label i is the "
                        "i-th in sorted order.", **fv)
    flags.DEFINE_string("train_dir", None,
                        "Folder for checkpoints, logs and train_config.json; an existing run "
                        "there is resumed.", **fv)
    flags.DEFINE_enum("mode", "cin", ["johnson", "cin", "finetune", "adain"],
                      "johnson: one style; cin: one conditional-instance-norm network for all "
                      "styles; finetune: add the styles to --checkpoint, train only gamma/beta; "
                      "adain: an AdaIN decoder for any style (--style_images is a second image "
                      "stream; writes <train_dir>/adain.keras).",
                      **fv)
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
                        "name such as 'varied').", **fv)
    flags.DEFINE_integer("batch_size", 16, "Global batch size.", **fv)
    flags.DEFINE_integer("image_size", 256, "Side of the square content crops.", **fv)
    flags.DEFINE_integer("style_size", None,
                         "Resize style images so their shorter side is this (default: native "
                         "size, as Magenta).", **fv)
    flags.DEFINE_float("learning_rate", None, "Adam learning rate (default 1e-3; adain: 1e-4).",
                       **fv)
    flags.DEFINE_integer("train_steps", 40000, "Total training steps (including resumed ones).",
                         **fv)
    flags.DEFINE_string("content_weights", None,
                        'JSON {layer: weight}; default \'{"vgg_16/conv3": 1.0}\'.', **fv)
    flags.DEFINE_string("style_weights", None,
                        'JSON {layer: weight}; default 1e-4 on vgg_16/conv1..conv4.', **fv)
    flags.DEFINE_float("tv_weight", 0.0, "Total-variation weight (Magenta's CIN training: 0).",
                       **fv)
    flags.DEFINE_enum("backbone", "vgg16", ["vgg16", "vgg19"], "Loss network.", **fv)
    flags.DEFINE_enum("pooling", "avg", ["avg", "max"], "Loss network pooling (Magenta: avg).",
                      **fv)
    flags.DEFINE_enum("preprocessing", "magenta", ["magenta", "keras"],
                      "Loss network input preprocessing (magenta: x*255 - Magenta's RGB mean, "
                      "in the BGR order of Keras' VGG weights).", **fv)
    flags.DEFINE_string("weights", "imagenet",
                        "Loss network weights: imagenet (Keras cache), random, or a local .h5.",
                        **fv)
    flags.DEFINE_float("alpha", 1.0, "Width multiplier of a new network (johnson / cin).", **fv)
    flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                      "Mixed precision for the trained network (loss network stays float32).",
                      **fv)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "one_device"],
                      "tf.distribute strategy; mirrored uses every GPU (or CPU device).", **fv)
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
                        "At the end, write a Magenta checkpoint here (cin / finetune).", **fv)
    flags.DEFINE_string("export_saved_model", None, "At the end, write a SavedModel here.", **fv)
    flags.DEFINE_integer("verbose", 1, "0: silent, 1: progress bar, 2: one line per epoch.", **fv)
    flags.mark_flags_as_required(["content_images", "style_images", "train_dir"], **fv)


def train_and_export(flag_values):
    """Train with the parsed flags, then export; returns ``(network, exported paths)``."""
    from nst_tf import export, training

    fv = flag_values
    network = training.train(
        fv.content_images, fv.style_images, fv.train_dir, mode=fv.mode, checkpoint=fv.checkpoint,
        batch_size=fv.batch_size, image_size=fv.image_size, style_size=fv.style_size,
        learning_rate=fv.learning_rate, train_steps=fv.train_steps,
        content_weights=fv.content_weights, style_weights=fv.style_weights,
        tv_weight=fv.tv_weight, backbone=fv.backbone, pooling=fv.pooling,
        preprocessing=fv.preprocessing, weights=fv.weights, alpha=fv.alpha,
        mixed_precision=None if fv.mixed_precision == "none" else fv.mixed_precision,
        strategy=fv.strategy, jit_compile=fv.jit_compile, seed=fv.seed,
        save_every=fv.save_every, log_dir=fv.logdir, summary_every=fv.summary_every,
        verbose=fv.verbose, encoder=fv.encoder, init_decoder=fv.init_decoder,
        lr_decay=fv.lr_decay)
    exported = [network.keras_path] if getattr(network, "keras_path", None) else []
    if fv.export_magenta and not network.interrupted:
        exported.append(training.export_magenta_checkpoint(network, fv.export_magenta))
    if fv.export_saved_model and not network.interrupted:
        exported.append(export.export_saved_model(network, fv.export_saved_model))
    return network, exported


def execute(flag_values):
    """Run with parsed flags; print where things went. Returns the exit code (0 or 1)."""
    result, code = call_reporting_errors(PROGRAM, train_and_export, flag_values)
    if result is not None:
        network, exported = result
        state = "stopped by Ctrl-C" if network.interrupted else "done"
        print(f"{PROGRAM}: {state} at step {network.final_step}; checkpoints in "
              f"{flag_values.train_dir}")
        for path in exported:
            print(path)
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

"""``nst-stylize``: Gatys neural style transfer from the command line (an absl app).

Example:
    nst-stylize --content=photo.jpg --style=starry.jpg --output=out.png --size=512 --steps=300
    nst-stylize --content=photo.jpg --style=a.jpg --style=b.jpg --style_weights=0.7,0.3 \\
        --output=out.png --preserve_color=luminance_only --scales=256,512 --weights=random

Defaults come from :data:`nst_tf.gatys.DEFAULTS`. ``--save_every=N`` writes ``out_00050.png``...
beside ``--output``. Ctrl-C stops the run and still writes ``--output`` (atomically); resume by
passing it back as ``--init=out.png`` (without ``--scales``, so the run continues at full size).
Errors print one line (``error: ...``) and exit with status 1 (2 for bad flags).

The flags live in their own ``FlagValues`` (not absl's global ``FLAGS``), so this module can be
imported next to the other nst-tf CLIs.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

from nst_tf.gatys import DEFAULTS  # noqa: E402

FLAGS = flags.FlagValues()

_D = DEFAULTS


def _define_flags():
    f = FLAGS
    flags.DEFINE_string("content", None, "Content image path.", flag_values=f)
    flags.DEFINE_multi_string("style", None, "Style image path; repeat for several styles.",
                              flag_values=f)
    flags.DEFINE_list("style_weights", None, "Comma-separated blend weights, one per --style "
                      "(default: equal).", flag_values=f)
    flags.DEFINE_string("output", None, "Output image path (.png, .jpg...).", flag_values=f)
    flags.DEFINE_integer("size", _D["size"], "Longest side of the output, pixels.",
                         flag_values=f)
    flags.DEFINE_list("steps", [str(_D["steps"])], "Optimizer steps (per scale, or one value "
                      "per scale).", flag_values=f)
    flags.DEFINE_enum("optimizer", _D["optimizer"], ["lbfgs", "adam"], "Optimizer.",
                      flag_values=f)
    flags.DEFINE_float("learning_rate", _D["learning_rate"], "Adam step size / L-BFGS first "
                       "step length (default: 0.02 / 1.0).", flag_values=f)
    flags.DEFINE_string("init", _D["init"], "content | style | noise | path of an image (use "
                        "a saved output to resume).", flag_values=f)
    flags.DEFINE_float("content_weight", _D["content_weight"], "Content loss weight.",
                       flag_values=f)
    flags.DEFINE_float("style_weight", _D["style_weight"], "Style loss weight.", flag_values=f)
    flags.DEFINE_float("tv_weight", _D["tv_weight"], "Total-variation weight.", flag_values=f)
    flags.DEFINE_string("backbone", _D["backbone"], "vgg19 | vgg16 | resnet50 | inception_v3.",
                        flag_values=f)
    flags.DEFINE_list("content_layers", _D["content_layers"], "Content layers (Keras names or "
                      "conv4_2 / relu4_2 aliases); default: the backbone's.", flag_values=f)
    flags.DEFINE_list("style_layers", _D["style_layers"], "Style layers; default: the "
                      "backbone's.", flag_values=f)
    flags.DEFINE_enum("style_loss", _D["style_loss"],
                      ["gram", "sliced_wasserstein", "gaussian_w2", "mean_std"],
                      "Style loss.", flag_values=f)
    flags.DEFINE_enum("pooling", _D["pooling"], ["max", "avg"], "Pooling in the backbone.",
                      flag_values=f)
    flags.DEFINE_enum("preserve_color", _D["preserve_color"] or "none",
                      ["none", "luminance", "luminance_only"], "Colour preservation.",
                      flag_values=f)
    flags.DEFINE_list("scales", None, "Coarse-to-fine schedule: one number = count of √2 "
                      "levels ending at --size; several = longest sides, e.g. 256,512.",
                      flag_values=f)
    flags.DEFINE_float("style_scale", _D["style_scale"], "Style images are resized to "
                       "style_scale × the output size.", flag_values=f)
    flags.DEFINE_integer("seed", _D["seed"], "Random seed (noise init, random weights).",
                         flag_values=f)
    flags.DEFINE_integer("save_every", 0, "Save an intermediate image every N steps "
                         "(0: never).", flag_values=f)
    flags.DEFINE_string("weights", _D["weights"], "imagenet | random | path to a .h5 file.",
                        flag_values=f)
    flags.DEFINE_string("jit_compile", str(_D["jit_compile"]), "auto | true | false (XLA).",
                        flag_values=f)
    flags.DEFINE_integer("steps_per_call", _D["steps_per_call"], "Optimizer steps per "
                         "compiled call.", flag_values=f)
    flags.DEFINE_enum("precision", _D["precision"], ["float32", "bfloat16"], "bfloat16: "
                      "convolutions in bfloat16 via oneDNN on x86 CPUs (about 4x faster with "
                      "AMX).", flag_values=f)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=f)


_define_flags()


class _FlagValueError(Exception):
    pass


def _ints(values, name):
    try:
        return [int(v) for v in values]
    except ValueError:
        raise _FlagValueError(f"--{name} must be integers, got {','.join(values)}") from None


def _floats(values, name):
    try:
        return [float(v) for v in values]
    except ValueError:
        raise _FlagValueError(f"--{name} must be numbers, got {','.join(values)}") from None


def options_from_flags(f=FLAGS):
    """The keyword arguments of :func:`nst_tf.gatys.run` given by the parsed flags."""
    steps = _ints(f.steps, "steps")
    scales = None
    if f.scales:
        scales = _ints(f.scales, "scales")
        scales = scales[0] if len(scales) == 1 else scales
    output = f.output
    root, ext = os.path.splitext(output)
    return dict(
        size=f.size, steps=steps[0] if len(steps) == 1 else steps, optimizer=f.optimizer,
        learning_rate=f.learning_rate, init=f.init, content_weight=f.content_weight,
        style_weight=f.style_weight, tv_weight=f.tv_weight, backbone=f.backbone,
        content_layers=f.content_layers or None, style_layers=f.style_layers or None,
        style_loss=f.style_loss, pooling=f.pooling,
        preserve_color=None if f.preserve_color == "none" else f.preserve_color,
        scales=scales, style_scale=f.style_scale, seed=f.seed, weights=f.weights,
        jit_compile=f.jit_compile, steps_per_call=f.steps_per_call, precision=f.precision,
        progress=f.progress,
        save_every=f.save_every or None,
        save_pattern=(root + "_{step:05d}" + ext) if f.save_every else None)


def _check_output(path):
    from PIL import Image

    from nst_tf.io import check_output_dir

    ext = os.path.splitext(path)[1].lower()
    if ext not in Image.registered_extensions():
        from nst_tf.errors import ImageError

        raise ImageError(f"cannot tell the image format of --output={path}: use .png or .jpg")
    check_output_dir(path)


def main(argv):
    """Run with already-parsed ``FLAGS``; returns the exit status."""
    from nst_tf.errors import NSTError

    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    missing = [name for name in ("content", "style", "output") if not FLAGS[name].value]
    if missing:
        print("error: missing " + ", ".join(f"--{m}" for m in missing), file=sys.stderr)
        return 2
    try:
        options = options_from_flags()
        style_weights = _floats(FLAGS.style_weights, "style_weights") \
            if FLAGS.style_weights else None
        _check_output(FLAGS.output)
        from nst_tf import gatys, images

        result = gatys.run(FLAGS.content, FLAGS.style, style_weights, **options)
        images.save_image(FLAGS.output, result.image)
    except (NSTError, _FlagValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result.interrupted:
        print(f"interrupted after {result.steps} steps; saved {FLAGS.output} "
              f"(resume with --init={FLAGS.output})", file=sys.stderr)
        return 130
    if FLAGS.progress:
        print(f"saved {FLAGS.output}")
    return 0


def _parse(argv):
    """Parse ``argv`` into this module's FLAGS; ``--help`` prints the flags and exits."""
    if any(a in ("-h", "--help", "-help", "--helpfull", "--helpshort") for a in argv[1:]):
        print(__doc__)
        print(FLAGS.get_help())
        sys.exit(0)
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    flags.FLAGS.mark_as_parsed()  # absl's app.run insists that the global FLAGS are parsed
    return rest


def cli_main(argv):
    """Parse ``argv`` (program name first) and run; returns the exit status (for tests)."""
    try:
        rest = _parse(list(argv))
    except SystemExit as e:
        return e.code
    return main(rest)


def run(argv=None):
    """Console-script entry point (``nst-stylize``)."""
    app.run(main, argv=argv, flags_parser=_parse)


if __name__ == "__main__":
    run()

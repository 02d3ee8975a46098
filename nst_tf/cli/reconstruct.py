"""``nst-reconstruct``: rebuild an image from one layer's content or style representation.

Example::

    nst-reconstruct --image=photo.jpg --layer=relu4_2 --kind=content --output=relu4_2.png
    nst-reconstruct --image=starry.jpg --layer=relu3_1 --kind=style --output=style3.png \\
        --size=256 --steps=300 --weights=random

Errors print one line and exit with status 1; the output is written atomically.
"""


from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points

PROGRAM = "nst-reconstruct"


def define_flags(fv):
    flags.DEFINE_string("image", None, "Image to reconstruct.", flag_values=fv)
    flags.DEFINE_string("layer", None, "Layer, e.g. relu4_2 or block4_conv2.", flag_values=fv)
    flags.DEFINE_enum("kind", "content", ["content", "style"], "Which representation.",
                      flag_values=fv)
    flags.DEFINE_string("output", None, "Output image path.", flag_values=fv)
    flags.DEFINE_integer("size", None, "Longest side to work at (default: the image's).",
                         flag_values=fv)
    flags.DEFINE_integer("steps", 200, "Optimizer steps.", flag_values=fv)
    flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Optimizer.", flag_values=fv)
    flags.DEFINE_string("backbone", "vgg19", "vgg19 | vgg16 | resnet50 | inception_v3.",
                        flag_values=fv)
    flags.DEFINE_string("weights", "imagenet", "imagenet | random | path to a .h5 file.",
                        flag_values=fv)
    flags.DEFINE_enum("pooling", "max", ["max", "avg"], "Pooling in the backbone.",
                      flag_values=fv)
    flags.DEFINE_enum("style_loss", "gram", ["gram", "sliced_wasserstein", "gaussian_w2",
                                             "mean_std"], "Statistics for --kind=style.",
                      flag_values=fv)
    flags.DEFINE_float("tv_weight", 0.0, "Total-variation smoothing.", flag_values=fv)
    flags.DEFINE_string("init", "noise", "noise | content | path of an image.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)
    flags.DEFINE_string("jit_compile", "auto", "auto | true | false (XLA).", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=fv)


def _reconstruct_and_save(fv):
    from nst_tf import images
    from nst_tf.cli.stylize import check_output_path
    from nst_tf.errors import ConfigError
    from nst_tf.io import check_keeps_inputs
    from nst_tf.reconstruction import reconstruct

    missing = [name for name in ("image", "layer", "output") if not fv[name].value]
    if missing:
        raise ConfigError("missing " + ", ".join(f"--{m}" for m in missing))
    check_output_path(fv.output)
    check_keeps_inputs(fv.output, [("--image", fv.image), ("--weights", fv.weights)])
    out = reconstruct(fv.image, fv.layer, fv.kind, size=fv.size, steps=fv.steps,
                      optimizer=fv.optimizer, backbone=fv.backbone, weights=fv.weights,
                      pooling=fv.pooling, style_loss=fv.style_loss, tv_weight=fv.tv_weight,
                      init=fv.init, seed=fv.seed, jit_compile=fv.jit_compile,
                      progress=fv.progress)
    images.save_image(fv.output, out)
    return fv.output


def execute(fv):
    output, code = call_reporting_errors(PROGRAM, _reconstruct_and_save, fv)
    if code == 0 and fv.progress:
        print(f"saved {output}")
    return code


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

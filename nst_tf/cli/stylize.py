"""``nst-stylize``: Gatys neural style transfer from the command line (an absl app).

Example::

    nst-stylize --content=photo.jpg --style=starry.jpg --output=out.png --size=512 --steps=300
    nst-stylize --content=photo.jpg --style=a.jpg --style=b.jpg --style_weights=0.7,0.3 \\
        --output=out.png --preserve_color=luminance_only --scales=256,512 --weights=random

Defaults come from :data:`nst_tf.gatys.DEFAULTS`. ``--save_every=N`` writes ``out_00050.png``...
beside ``--output``. Ctrl-C stops the run and still writes ``--output`` (atomically), then prints
the flags that resume it: ``--init=out.png`` and, for a single-scale run, ``--steps=`` the steps
left (without ``--scales``, so the run continues at full size; L-BFGS restarts its history).

Large images and long runs::

    nst-stylize --content=photo.jpg --style=starry.jpg --output=print.png --size=4096 \
        --scales=1024,2048,4096 --steps=300,100,20 --tile_size=auto --max_memory=20GB \
        --checkpoint_every=5

``--tile_size=auto`` computes the levels that would not fit ``--max_memory`` by exact tiles
(:mod:`nst_tf.tiling`; ``--tile_size=1024`` tiles every level larger than 1024 px).
``--checkpoint_every=N`` saves the image and the optimizer state (L-BFGS history included) to
``<output>.ckpt.npz`` (or ``--checkpoint``) every N steps; running the same command again after
a crash, a kill or Ctrl-C resumes from it exactly. The file is removed once the output is saved.
Errors print one line (``nst-stylize: error: ...``) and exit with status 1; an interrupted run
exits with 130 after saving. ``main(argv)`` runs it from Python with fresh flags (see
:mod:`nst_tf.cli.runner`).
"""

import os
import sys

from absl import flags

from nst_tf.cli.runner import call_reporting_errors, entry_points, parse_numbers
from nst_tf.gatys import DEFAULTS as _D

PROGRAM = "nst-stylize"


def define_flags(f):
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
    flags.DEFINE_enum("precision", _D["precision"], ["float32", "bfloat16", "auto"], "bfloat16: "
                      "convolutions in bfloat16 via oneDNN on x86 CPUs (about 3x faster with "
                      "AMX; not on every CPU); auto: bfloat16 where a one-time measurement "
                      "finds it faster.", flag_values=f)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=f)
    flags.DEFINE_integer("lbfgs_memory", _D["lbfgs_memory"], "L-BFGS history length (each pair "
                         "holds two full-size images).", flag_values=f)
    flags.DEFINE_string("tile_size", "none", "none | auto | N: compute the objective by exact "
                        "tiles of N px (a multiple of the deepest layer's stride, 16 for VGG); "
                        "auto tiles only the scales that would not fit --max_memory.",
                        flag_values=f)
    flags.DEFINE_string("max_memory", None, "Memory budget of --tile_size=auto, e.g. 20GB or "
                        "16GiB (default: 80 % of the RAM).", flag_values=f)
    flags.DEFINE_integer("checkpoint_every", 0, "Save the image and optimizer state every N "
                         "steps (0: never); rerunning the same command resumes.", flag_values=f)
    flags.DEFINE_string("checkpoint", None, "Checkpoint file (default: <output>.ckpt.npz when "
                        "--checkpoint_every is set).", flag_values=f)


_numbers = parse_numbers


def options_from_flags(f):
    """The keyword arguments of :func:`nst_tf.gatys.run` given by the parsed flags."""
    steps = _numbers(f.steps, "steps", int)
    scales = None
    if f.scales:
        scales = _numbers(f.scales, "scales", int)
        scales = scales[0] if len(scales) == 1 else scales
    root, ext = os.path.splitext(f.output or "")
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
        save_pattern=(root + "_{step:05d}" + ext) if f.save_every else None,
        lbfgs_memory=f.lbfgs_memory, tile_size=f.tile_size, max_memory=f.max_memory,
        checkpoint=checkpoint_path(f), checkpoint_every=f.checkpoint_every or None)


def checkpoint_path(f):
    """``--checkpoint``, or ``<output>.ckpt.npz`` when only ``--checkpoint_every`` is given."""
    if f.checkpoint:
        return f.checkpoint
    if f.checkpoint_every and f.output:
        return f.output + ".ckpt.npz"
    return None


def check_output_path(path):
    """Fail early (before any optimization) on an output folder or format that cannot work."""
    from PIL import Image

    from nst_tf.errors import ImageError
    from nst_tf.io import check_output_dir

    if os.path.splitext(path)[1].lower() not in Image.registered_extensions():
        raise ImageError(f"cannot tell the image format of {path}: use .png or .jpg")
    check_output_dir(path)


def check_checkpoint_path(checkpoint, output, save_pattern=None):
    """Refuse a checkpoint that is the output or one of the ``--save_every`` images (the same
    file once resolved: symlinks, hard links, ``..``): a finished run deletes its checkpoint,
    which would delete that image."""
    import re

    from nst_tf.io import OutputPathError, same_file

    if not checkpoint:
        return
    if same_file(checkpoint, output):
        raise OutputPathError(f"--checkpoint={checkpoint} is the output {output}: a finished run "
                              "deletes its checkpoint; choose another --checkpoint (the default "
                              f"is {output}.ckpt.npz)")
    if save_pattern:
        root, ext = save_pattern.split("{step:05d}")
        real = os.path.realpath(checkpoint)
        if re.fullmatch(re.escape(os.path.realpath(root)) + r"[0-9]{5,}" + re.escape(ext), real):
            raise OutputPathError(f"--checkpoint={checkpoint} is one of the --save_every images; "
                                  "choose another --checkpoint")


def inputs_of(f):
    """The ``(flag, paths)`` the run reads that its outputs must not replace. ``--init`` is
    not one: ``--init=<output>`` resumes a run into its own output (written atomically)."""
    return [("--content", f.content), ("--style", f.style), ("--weights", f.weights)]


def _stylize_and_save(f):
    from nst_tf import gatys, images
    from nst_tf.errors import ConfigError
    from nst_tf.io import check_keeps_inputs

    missing = [name for name in ("content", "style", "output") if not f[name].value]
    if missing:
        raise ConfigError("missing " + ", ".join(f"--{m}" for m in missing))
    options = options_from_flags(f)
    style_weights = _numbers(f.style_weights, "style_weights", float) \
        if f.style_weights else None
    check_output_path(f.output)
    check_keeps_inputs(f.output, inputs_of(f))
    if options["checkpoint"]:   # written during the run, deleted at its end
        check_keeps_inputs(options["checkpoint"], inputs_of(f), "--checkpoint")
    check_checkpoint_path(options["checkpoint"], f.output, options["save_pattern"])
    result = gatys.run(f.content, f.style, style_weights, **options)
    images.save_image(f.output, result.image)
    if options["checkpoint"] and not result.interrupted and os.path.exists(options["checkpoint"]):
        os.remove(options["checkpoint"])  # the output is safe: the run is finished
    return result


def _resume_flags(f, steps_done):
    """The flags that continue an interrupted run from its saved output: ``--init=<output>``,
    plus the steps still to run when the run had a single scale (with ``--scales`` the saved
    image is at full size, so the rest of the schedule is left to the user)."""
    resume = f"--init={f.output}"
    steps = _numbers(f.steps, "steps", int)
    if not f.scales and len(steps) == 1:
        resume += f" --steps={max(steps[0] - steps_done, 1)}"
    return resume


def execute(f):
    """Run with parsed flags; returns the exit status."""
    result, code = call_reporting_errors(PROGRAM, _stylize_and_save, f)
    if code:
        return code
    if result.interrupted:
        checkpoint = checkpoint_path(f)
        how = (f"run the same command again to resume from {checkpoint}" if checkpoint
               else f"resume with {_resume_flags(f, result.steps)}")
        print(f"{PROGRAM}: interrupted after {result.steps} steps; saved {f.output} ({how})",
              file=sys.stderr)
        return 130
    if f.progress:
        print(f"saved {f.output}")
    return 0


main, run = entry_points(PROGRAM, define_flags, execute)

if __name__ == "__main__":
    run()

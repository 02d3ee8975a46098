"""nst_tf.scale on Beam's DirectRunner: a generated tree of small images, tiny models.

Each run's outputs are checked against ``nst_tf.stylize`` called directly with the style and
strength that :func:`nst_tf.scale.choose` gives for the image's relative path, so the test holds
the pipeline to the documented mapping, not to itself.
"""

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import nst_tf
from nst_tf.cli import stylize_dataset as cli
from nst_tf.errors import ConfigError, StyleWeightsError
from nst_tf.images import float_to_uint8, load_image, uint8_to_float
from nst_tf.networks import johnson_network
from nst_tf.scale import choose, make_plan, stylize_dataset
from pastiche_helpers import random_pastiche
from test_arbitrary_api import random_arbitrary
from torch_compat.adain import load_adain

ADAIN = os.path.join(os.path.dirname(__file__), "fixtures", "adain")   # a .pth model folder
QUIET = dict(progress=False, progress_seconds=0)
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
CLI = os.path.join(os.path.dirname(sys.executable), "nst-stylize-dataset")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _picture(rng, height, width):
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], -1)
    return (np.clip(base + 0.15 * rng.standard_normal((height, width, 3)), 0, 1) * 255) \
        .astype(np.uint8)


def make_tree(root):
    """Content and style trees with the awkward cases; returns (content, styles) folders."""
    rng = np.random.default_rng(0)
    content, styles = root / "content", root / "styles"
    for folder in (content / "cats" / "small", content / "dogs", styles / "sub"):
        folder.mkdir(parents=True)
    Image.fromarray(_picture(rng, 40, 48)).save(content / "cats" / "a.jpg", quality=95)
    Image.fromarray(_picture(rng, 40, 48)).save(content / "cats" / "a.png")   # same output name
    Image.fromarray(_picture(rng, 40, 48)).save(content / "cats" / "b.png")
    Image.fromarray(_picture(rng, 33, 50)).save(content / "cats" / "small" / "c.jpg")
    Image.fromarray(_picture(rng, 6, 7)).save(content / "cats" / "tiny.png")
    Image.fromarray(_picture(rng, 40, 48)).convert("CMYK").save(content / "dogs" / "cmyk.jpg")
    Image.fromarray(_picture(rng, 40, 48)).convert("L").save(content / "dogs" / "grey.png")
    Image.fromarray(_picture(rng, 40, 48)[..., 0].astype(np.uint16) * 257).save(
        content / "dogs" / "deep.png")                                        # mode I;16
    Image.fromarray(np.dstack([_picture(rng, 40, 48), rng.integers(0, 256, (40, 48), np.uint8)])
                    ).save(content / "dogs" / "alpha.png")
    whole = (content / "cats" / "a.jpg").read_bytes()
    (content / "dogs" / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
    (content / "dogs" / "notes.txt").write_text("not an image")
    (content / "dogs" / ".DS_Store").write_bytes(b"\0\0")
    for i in range(3):
        Image.fromarray(_picture(rng, 30 + 6 * i, 36)).save(styles / f"s{i}.jpg")
    Image.fromarray(_picture(rng, 28, 31)).save(styles / "sub" / "s3.png")
    (styles / "readme.txt").write_text("not a style")
    Image.fromarray(_picture(rng, 30, 30)).save(styles / ".hidden.jpg")
    return content, styles


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("data"))


def manifest(output):
    with open(os.path.join(output, "manifest.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def files(output):
    """``{relative path: (inode, mtime_ns, bytes)}`` of every file below ``output``."""
    found = {}
    for folder, _, names in os.walk(output):
        for name in names:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            with open(path, "rb") as f:
                found[os.path.relpath(path, output)] = (stat.st_ino, stat.st_mtime_ns, f.read())
    return found


def pixels(output, rel):
    return np.asarray(Image.open(os.path.join(output, rel)))


def eight_bit(path):
    """A content file as the pipeline feeds it: decoded, RGB, rounded to 8 bits."""
    return uint8_to_float(float_to_uint8(load_image(path)))


# --- AdaIN (pytorch-AdaIN .pth folder), style images, a strength range ----------------------------

POOL = ["s0.jpg", "s1.jpg", "s2.jpg", "sub/s3.png"]
OK = ["cats/a.jpg", "cats/b.png", "cats/small/c.jpg", "dogs/alpha.png", "dogs/cmyk.jpg",
      "dogs/deep.png", "dogs/grey.png"]
FAILED = {"cats/a.png": "its output cats/a.png is also the output of cats/a.jpg",
          "cats/tiny.png": "AdaIN needs at least 9x9",
          "dogs/notes.txt": "not an image file",
          "dogs/truncated.jpg": "corrupt or truncated image file dogs/truncated.jpg"}


@pytest.fixture(scope="module")
def adain_run(tree, tmp_path_factory):
    content, styles = tree
    output = str(tmp_path_factory.mktemp("adain") / "out")
    summary = stylize_dataset(str(content), output, ADAIN, styles=str(styles), seed=7,
                              strength="0.5,1", **QUIET)
    return output, summary


def test_layout_manifest_and_pixels(tree, adain_run):
    content, styles = tree
    output, summary = adain_run
    assert sorted(files(output)) == sorted(["manifest.jsonl", "run.json"] + [
        os.path.splitext(rel)[0] + ".png" for rel in OK])
    rows = manifest(output)
    assert [r["content"] for r in rows] == sorted(OK + list(FAILED))       # every input, sorted
    network = load_adain(os.path.join(ADAIN, "vgg_normalised.pth"),
                         os.path.join(ADAIN, "decoder.pth"))
    for row in rows:
        index, strength = choose(7, row["content"], len(POOL), (0.5, 1.0))
        assert (row["style"], row["strength"]) == (POOL[index], strength)
        if row["content"] in FAILED:
            assert row["status"] == "failed" and row["output"] is None
            assert FAILED[row["content"]] in row["error"]
            continue
        assert row["status"] == "ok" and row["error"] is None
        assert row["output"] == os.path.splitext(row["content"])[0] + ".png"
        expected = nst_tf.stylize(eight_bit(content / row["content"]),
                                  load_image(styles / row["style"]), model=network,
                                  strength=strength, crop=True)
        np.testing.assert_array_equal(pixels(output, row["output"]), float_to_uint8(expected))
    assert (summary.total, summary.ok, summary.failed, summary.written) == (11, 7, 4, 7)
    # Each style image was read and encoded once, however many images took it.
    prepared = {r["style"] for r in rows if r["content"] != "cats/a.png"}
    assert summary.counters["styles_prepared"] == len(prepared) < len(rows) - 1
    assert summary.counters["styles_left_out"] == 1                       # readme.txt
    # Equally sized images share forward passes: 8 images of 3 sizes reached the model (the 7
    # written and cats/tiny.png, alone in its size group).
    assert 3 <= summary.counters["forward_passes"] < 8


def test_rerun_writes_nothing(adain_run, tree, tmp_path):
    output = str(tmp_path / "out")
    shutil.copytree(adain_run[0], output)
    before = files(output)
    summary = stylize_dataset(str(tree[0]), output, ADAIN, styles=str(tree[1]), seed=7,
                              strength="0.5,1", **QUIET)
    assert files(output) == before                          # same inodes, mtimes and bytes
    assert (summary.written, summary.existing, summary.failed) == (0, 7, 4)


def test_partial_rerun_writes_exactly_the_missing_files(adain_run, tree, tmp_path):
    output = str(tmp_path / "out")
    shutil.copytree(adain_run[0], output)
    before = files(output)
    for rel in ("cats/small/c.png", "dogs/grey.png"):
        os.remove(os.path.join(output, rel))
    summary = stylize_dataset(str(tree[0]), output, ADAIN, styles=str(tree[1]), seed=7,
                              strength="0.5,1", **QUIET)
    after = files(output)
    assert summary.written == 2 and sorted(after) == sorted(before)
    for rel, (inode, mtime, data) in before.items():
        assert after[rel][2] == data, rel                   # identical bytes
        rewritten = rel in ("cats/small/c.png", "dogs/grey.png")
        assert (after[rel][:2] != (inode, mtime)) == rewritten, rel


@pytest.mark.slow
def test_two_worker_processes_give_the_same_bytes(adain_run, tree, tmp_path):
    output = str(tmp_path / "out")
    summary = stylize_dataset(str(tree[0]), output, ADAIN, styles=str(tree[1]), seed=7,
                              strength="0.5,1", pipeline_args=TWO_WORKERS, **QUIET)
    assert summary.written == 7
    ours = {rel: data for rel, (_, _, data) in files(output).items()}
    assert ours == {rel: data for rel, (_, _, data) in files(adain_run[0]).items()}


# --- The other families ---------------------------------------------------------------------------

def _resized(path, size):
    """torchvision Resize(size) on the 8-bit RGB image, written out independently."""
    image = Image.fromarray(float_to_uint8(load_image(path)))
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    return uint8_to_float(np.asarray(image.resize(new, Image.BILINEAR)))


def test_arbitrary_style_network(tree, tmp_path):
    content, styles = tree
    network = random_arbitrary()
    model = str(tmp_path / "arbitrary.keras")
    network.save(model)
    output = str(tmp_path / "out")
    summary = stylize_dataset(str(content), output, model, styles=str(styles), seed=1,
                              strength="0.3,1", content_size=24, style_size=64, **QUIET)
    rows = {r["content"]: r for r in manifest(output)}
    assert summary.ok == 8 and rows["cats/tiny.png"]["status"] == "ok"   # resized to 24 px
    for rel in ("cats/a.jpg", "dogs/cmyk.jpg", "cats/tiny.png"):
        index, strength = choose(1, rel, len(POOL), (0.3, 1.0))
        assert (rows[rel]["style"], rows[rel]["strength"]) == (POOL[index], strength)
        expected = nst_tf.stylize(_resized(content / rel, 24), load_image(styles / POOL[index]),
                                  model=network, strength=strength, style_size=64)
        got = pixels(output, rows[rel]["output"]).astype(int)
        assert got.shape[:2] == expected.shape[:2] and min(got.shape[:2]) == 24
        assert np.abs(got - float_to_uint8(expected)).max() <= 1


def test_multi_style_network_draws_from_the_given_indices(tree, tmp_path):
    content, _ = tree
    network = random_pastiche(3, seed=2)
    model = str(tmp_path / "pastiche.keras")
    network.save(model)
    output = str(tmp_path / "out")
    stylize_dataset(str(content), output, model, styles="0,2", seed=3, **QUIET)
    rows = [r for r in manifest(output) if r["status"] == "ok"]
    assert {r["style"] for r in rows} == {0, 2} and all(r["strength"] is None for r in rows)
    for row in rows:
        assert row["style"] == [0, 2][choose(3, row["content"], 2)[0]]
        expected = nst_tf.stylize(eight_bit(content / row["content"]), row["style"],
                                  model=network, crop=True)
        got = pixels(output, row["output"]).astype(int)
        assert np.abs(got - float_to_uint8(expected)).max() <= 1


def test_single_style_network_through_the_command_line(tree, tmp_path, capsys):
    content, _ = tree
    network = johnson_network(alpha=0.25, num_residual=1)
    rng = np.random.default_rng(0)
    for w in network.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype(np.float32))
    model = str(tmp_path / "johnson.keras")
    network.save(model)
    output = str(tmp_path / "out")
    code = cli.main(["nst-stylize-dataset", f"--content={content}", f"--output={output}",
                     f"--model={model}", "--format=jpeg", "--content_size=20",
                     "--progress_seconds=0", "--", "--direct_num_workers=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "nst-stylize-dataset: 11 images: 8 ok (8 stylized now, 0 already there), 3 failed" \
        in out and "failed: dogs/notes.txt: ImageError: not an image file" in out
    rows = {r["content"]: r for r in manifest(output)}
    assert rows["cats/a.jpg"] == {"content": "cats/a.jpg", "style": None, "strength": None,
                                  "output": "cats/a.jpg", "status": "ok", "error": None}
    assert rows["cats/a.png"]["error"].endswith("also the output of cats/a.jpg")
    expected = float_to_uint8(nst_tf.stylize(_resized(content / "dogs" / "grey.png", 20),
                                             model=network, crop=True))
    encoded = io.BytesIO()
    Image.fromarray(expected).save(encoded, format="JPEG", quality=95)
    np.testing.assert_array_equal(pixels(output, "dogs/grey.jpg"),
                                  np.asarray(Image.open(encoded)))


def test_command_line_errors_are_one_line(tree, tmp_path, capsys):
    code = cli.main(["nst-stylize-dataset", f"--content={tree[0]}",
                     f"--output={tmp_path / 'out'}", f"--model={ADAIN}"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("nst-stylize-dataset: error: ") and "give styles" in err
    assert cli.split_beam_args(["p", "--a=1", "--", "--runner=X", "--", "y"]) == \
        (["p", "--a=1"], ["--runner=X", "--", "y"])


def test_runner_names(tree, tmp_path, capsys):
    from nst_tf.scale.beam import runner_args

    dask = "apache_beam.runners.dask.dask_runner.DaskRunner"
    assert runner_args(["--runner=dask", "--x=1"]) == [f"--runner={dask}", "--x=1"]
    assert runner_args(["--runner", "DaskRunner"]) == ["--runner", dask]
    assert runner_args(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    code = cli.main(["nst-stylize-dataset", f"--content={tree[0]}", f"--styles={tree[1]}",
                     f"--output={tmp_path / 'out'}", f"--model={ADAIN}", "--",
                     "--runner=NoSuchRunner"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "Unexpected pipeline runner: NoSuchRunner" in err and "(or dask" in err
    assert not os.path.exists(tmp_path / "out")               # refused before anything is written


def test_threads_per_local_worker_process():
    two = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert cli.default_threads(two, cpus=8) == 4 and cli.default_threads(two, cpus=2) == 1
    assert cli.default_threads([], cpus=8) is None                   # one in-process worker
    assert cli.default_threads(["--direct_num_workers=0",            # 0: one per core
                                "--direct_running_mode=multi_processing"], cpus=8) == 1
    assert cli.default_threads(two + ["--runner=DataflowRunner"], cpus=8) is None


def test_a_failing_batch_fails_only_the_image_at_fault():
    # The family raises for any batch holding the white image: the batch is retried image by
    # image, so only that image gets the error; other sizes run as their own batch.
    from nst_tf.scale.dataset import Job
    from nst_tf.scale.model import Example, Stylizer, stylize_examples

    class Family:
        calls = []

        def stylize_batch(self, network, batch, styles, strengths=None, **options):
            self.calls.append(len(batch))
            if (batch == 1.0).all(axis=(1, 2, 3)).any():
                raise MemoryError("out of memory")
            return 1.0 - batch * np.float32(strengths)[:, None, None, None]

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (4, 5, 3), np.uint8) for _ in range(3)]
    images.insert(1, np.full((4, 5, 3), 255, np.uint8))
    images.append(rng.integers(0, 255, (6, 5, 3), np.uint8))
    examples = [Example(Job(f"{i}.jpg", f"/d/{i}.jpg", None, None, 0.5, f"{i}.png"), image, None)
                for i, image in enumerate(images)]
    outputs = stylize_examples(Stylizer(Family(), None), examples)
    assert outputs[1] == "MemoryError: out of memory"
    for i in (0, 2, 3, 4):
        np.testing.assert_array_equal(
            outputs[i], float_to_uint8(1.0 - uint8_to_float(images[i]) * np.float32(0.5)))
    assert sorted(Family.calls) == [1, 1, 1, 1, 1, 4]     # 4 of one size, then one by one


# --- A second runner: Dask --------------------------------------------------------------------------

@pytest.mark.slow
def test_dask_runner_gives_the_direct_runners_bytes_manifest_and_dead_letters(tree, adain_run,
                                                                              tmp_path):
    # The command as typed, with --runner=dask, on a local Dask cluster (a scheduler on
    # 127.0.0.1 and two worker threads in this process): the same files, byte for byte, as
    # the DirectRunner's run of the same request, failed rows included.
    from distributed import LocalCluster

    content, styles = tree
    output = str(tmp_path / "out")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        done = subprocess.run(
            [CLI, f"--content={content}", f"--styles={styles}", f"--output={output}",
             f"--model={ADAIN}", "--seed=7", "--strength=0.5,1", "--progress_seconds=0", "--",
             "--runner=dask", f"--dask_client_address={cluster.scheduler_address}"],
            capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    # No "(N stylized now ...)": Beam's DaskRunner reports no metrics.
    assert "nst-stylize-dataset: 11 images: 7 ok, 4 failed" in done.stdout
    ours = {rel: data for rel, (_, _, data) in files(output).items()}
    assert ours == {rel: data for rel, (_, _, data) in files(adain_run[0]).items()}
    assert len(manifest(output)) == 11


# --- Stylized-ImageNet# --- Stylized-ImageNet ---------------------------------------------------------------------------

def test_stylized_imagenet_recipe(tmp_path):
    rng = np.random.default_rng(5)
    content, styles = tmp_path / "imagenet" / "train", tmp_path / "paintings"
    (content / "n01").mkdir(parents=True)
    (content / "n02").mkdir()
    styles.mkdir()
    Image.fromarray(_picture(rng, 300, 261)).save(content / "n01" / "x_1.JPEG", quality=90)
    Image.fromarray(_picture(rng, 280, 401)).save(content / "n02" / "x_2.JPEG", quality=90)
    Image.fromarray(_picture(rng, 250, 320)).save(styles / "p1.jpg")
    Image.fromarray(_picture(rng, 240, 229)).save(styles / "p2.png")
    Image.fromarray(_picture(rng, 200, 300)).save(styles / "small.jpg")   # < 224: left out
    output = str(tmp_path / "sin" / "train")
    summary = stylize_dataset(str(content), output, ADAIN, styles=str(styles),
                              recipe="stylized-imagenet", **QUIET)
    assert (summary.ok, summary.counters["styles_left_out"]) == (2, 1)
    rows = {r["content"]: r for r in manifest(output)}
    assert sorted(rows) == ["n01/x_1.JPEG", "n02/x_2.JPEG"]
    for rel, row in rows.items():
        assert row["output"] == rel.replace(".JPEG", ".png") and row["strength"] == 1.0
        assert row["style"] == ["p1.jpg", "p2.png"][choose(0, rel, 2)[0]]
        assert pixels(output, row["output"]).shape == (224, 224, 3)

    # n02/x_2.JPEG (401x280) by hand: Resize(256) = int(256 * 401 / 280) x 256 = 366x256,
    # CenterCrop(224) at (16, 71); the painting's centred square (offsets truncated),
    # thumbnail(224) with LANCZOS; AdaIN with alpha 1.
    photo = Image.open(content / "n02" / "x_2.JPEG").convert("RGB").resize((366, 256),
                                                                           Image.BILINEAR)
    photo = np.asarray(photo)[16:240, 71:295]
    painting = Image.open(styles / rows["n02/x_2.JPEG"]["style"]).convert("RGB")
    width, height = painting.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    painting = painting.crop((left, top, left + side, top + side))
    painting.thumbnail((224, 224), Image.LANCZOS)
    network = load_adain(os.path.join(ADAIN, "vgg_normalised.pth"),
                         os.path.join(ADAIN, "decoder.pth"))
    expected = nst_tf.stylize(photo / np.float32(255), np.asarray(painting) / np.float32(255),
                              model=network, style_size=None, crop=True)
    np.testing.assert_array_equal(pixels(output, "n02/x_2.png"), float_to_uint8(expected))


# --- Requests that are wrong before any worker starts ----------------------------------------

def test_plan_errors(tree, tmp_path):
    content, styles = str(tree[0]), str(tree[1])
    out = str(tmp_path / "out")
    pastiche = str(tmp_path / "pastiche.keras")
    random_pastiche(3, seed=2).save(pastiche)
    johnson = str(tmp_path / "johnson.keras")
    johnson_network(alpha=0.25, num_residual=1).save(johnson)
    cases = [
        (dict(model=ADAIN), "takes a style image per content image"),
        (dict(model=johnson, styles=styles), "single-style network"),
        (dict(model=pastiche, strength=0.5), "strength does not apply to pastiche"),
        (dict(model=pastiche, styles="0", style_weights="{0: 1}"), "not both"),
        (dict(model=ADAIN, styles=styles, fast=True), "fast does not apply to adain models"),
        (dict(model=ADAIN, styles=str(tmp_path / "none" / "*.jpg")),
         "no style image files match"),
        (dict(model=ADAIN, styles=styles, content_size=200, crop_size=224), "larger than"),
        (dict(model=johnson_network(alpha=0.25)), "as a preset name or a path"),
        (dict(model=johnson, format="gif"), "format must be one of png, jpeg"),
        (dict(model=johnson, recipe="stylized-coco"), "unknown recipe"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ConfigError, match=match):
            make_plan(content, out, **kwargs)
    with pytest.raises(ConfigError, match="inside the content folder"):
        make_plan(content, os.path.join(content, "stylized"), johnson)
    with pytest.raises(ConfigError, match="content not found"):
        make_plan(str(tmp_path / "missing"), out, johnson)
    with pytest.raises(StyleWeightsError, match="out of range|0 to 2|num_styles"):
        make_plan(content, out, pastiche, styles="0,7")
    plan = make_plan(content, out, ADAIN, styles=styles + "/*.jpg")
    assert (plan.style_root, plan.style_pattern) == (styles, styles + "/*.jpg")
    assert (plan.content_root, plan.content_pattern) == (content, content + "/**")
    assert plan.prepare_options == {} and plan.strength == (1.0, 1.0)

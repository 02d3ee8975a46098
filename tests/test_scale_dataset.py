"""nst_tf.scale.dataset and .preprocess: the pure parts of a dataset run (no Beam, no TF)."""

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_tf.errors import ConfigError, ImageError
from nst_tf.scale import dataset, preprocess
from nst_tf.scale.dataset import Job, ManifestRow, Summary, choose


def test_choice_is_sha256_of_seed_and_path():
    # The documented mapping, computed independently: first 8 bytes mod N, next 8 / 2^64.
    for seed, rel, n, (low, high) in [(0, "a/b.jpg", 7, (0.0, 1.0)),
                                      (3, "x.JPEG", 79395, (0.25, 0.5)),
                                      (-1, "naïve/ü.png", 2, (1.0, 1.0))]:
        digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
        index = int(digest[:8].hex(), 16) % n
        u = int(digest[8:16].hex(), 16) / 18446744073709551616.0
        strength = low if low == high else low + (high - low) * u
        assert choose(seed, rel, n, (low, high)) == (index, strength)


def test_choice_depends_on_seed_and_path_only():
    paths = [f"class{i % 7}/img{i}.jpg" for i in range(2000)]
    first = {p: choose(5, p, 10, (0.2, 0.9)) for p in paths}
    shuffled = list(reversed(paths))
    assert {p: choose(5, p, 10, (0.2, 0.9)) for p in shuffled} == first     # order-free
    assert sum(choose(6, p, 10)[0] != first[p][0] for p in paths) > 1600  # seed matters
    counts = np.bincount([first[p][0] for p in paths], minlength=10)
    assert counts.min() > 150 and counts.max() < 250                       # ~uniform (200 each)
    strengths = np.array([first[p][1] for p in paths])
    assert 0.2 <= strengths.min() and strengths.max() < 0.9 and abs(strengths.mean() - 0.55) < 0.02
    assert choose(0, "a.jpg") == (None, None)
    with pytest.raises(ConfigError, match="empty"):
        choose(0, "a.jpg", 0)


def test_names():
    assert dataset.pattern_root("/data/train/*/*.JPEG") == "/data/train"
    assert dataset.pattern_root("gs://b/x/**") == "gs://b/x"
    assert dataset.pattern_root("/data/img?.png") == "/data"
    assert dataset.relative_path("/data/train/", "/data/train/n01/a.JPEG") == "n01/a.JPEG"
    assert dataset.relative_path("gs://b/x", "gs://b/x/y/z.jpg") == "y/z.jpg"
    with pytest.raises(ValueError, match="not inside"):
        dataset.relative_path("/data/train", "/data/training/a.jpg")
    assert dataset.output_name("n01/a.b.JPEG", "png") == "n01/a.b.png"
    assert dataset.output_name("noext", "jpeg") == "noext.jpg"
    with pytest.raises(ConfigError, match="png, jpeg"):
        dataset.output_name("a.jpg", "gif")
    assert dataset.is_hidden("a/.DS_Store") and dataset.is_hidden(".tmp/a.png")
    assert not dataset.is_hidden("a/b.c/d.png")


def test_globstar_also_matches_no_folder():
    # A shell's (and Python's glob's) "**/" matches zero or more folders; Beam's "**" needs
    # one character at least, so each "**/" is also tried without it.
    assert dataset.pattern_variants("photos/**/*.jpg") == ["photos/**/*.jpg", "photos/*.jpg"]
    assert sorted(dataset.pattern_variants("a/**/b/**/*.png")) == sorted([
        "a/**/b/**/*.png", "a/b/**/*.png", "a/**/b/*.png", "a/b/*.png"])
    assert dataset.pattern_variants("gs://b/x/**") == ["gs://b/x/**"]
    assert dataset.pattern_variants("x/*.jpg") == ["x/*.jpg"]


def test_escape_quotes_glob_characters_for_beam():
    import warnings

    from apache_beam.io.filesystem import FileSystem

    assert dataset.escape("/d/set[1]/a*b?.jpg") == "/d/set[][]1]/a[*]b[?].jpg"
    # Beam's own pattern translation then matches the name literally (and "]" for "[", which
    # callers drop with `below`), without Python's nested-set FutureWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        match = re.compile(FileSystem.translate_pattern(dataset.escape("/d/set[1]") + "/**")).match
    assert match("/d/set[1]/x.png") and not match("/d/set1/x.png")
    assert dataset.below("/d/set[1]", "/d/set[1]/x.png")
    assert not dataset.below("/d/set[1]", "/d/set]1]/x.png")
    assert not dataset.below("/d/set", "/d/settings/x.png")


@pytest.mark.parametrize("value,expected", [
    (1, (1.0, 1.0)), (0.25, (0.25, 0.25)), ("0.5", (0.5, 0.5)), ("0.2,0.8", (0.2, 0.8)),
    ((0.0, 1.0), (0.0, 1.0)),
])
def test_parse_strength(value, expected):
    assert dataset.parse_strength(value) == expected


@pytest.mark.parametrize("value", ["abc", "0.8,0.2", "1.5", -0.1, (0.1, 0.2, 0.3), True])
def test_bad_strength(value):
    with pytest.raises(ConfigError, match="strength"):
        dataset.parse_strength(value)


def test_recipes():
    sin = dataset.recipe("stylized-imagenet")
    assert (sin.model, sin.content_size, sin.crop_size, sin.style_size, sin.min_style_size,
            sin.strength, sin.format) == ("adain", 256, 224, 224, 224, (1.0, 1.0), "png")
    with pytest.raises(ConfigError, match="stylized-imagenet"):
        dataset.recipe("stylized-coco")


def test_manifest_rows_and_summary():
    job = Job("b/x.jpg", "/d/b/x.jpg", "s/1.png", "/s/s/1.png", 0.5, "b/x.png")
    ok, failed = job.row(), Job("a.jpg", "/d/a.jpg", 3, None, None, "a.png").row(ValueError("bad"))
    assert ok == ManifestRow("b/x.jpg", "s/1.png", 0.5, "b/x.png", "ok", None)
    text = dataset.manifest_text([ok.line(), failed.line()])
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 2
    assert list(json.loads(lines[0])) == ["content", "style", "strength", "output", "status",
                                          "error"]
    assert json.loads(lines[0]) == {"content": "a.jpg", "style": 3, "strength": None,
                                    "output": None, "status": "failed",
                                    "error": "ValueError: bad"}
    assert ManifestRow.from_json(lines[1]) == ok
    summary = Summary.of([ok, failed], written=1)
    assert summary.line() == "2 images: 1 ok (1 stylized now, 0 already there), 1 failed"
    assert summary.examples == [failed]
    assert Summary.of([ok]).line() == "1 images: 1 ok, 0 failed"


# --- preprocess: torchvision / Stylized-ImageNet arithmetic ---------------------------------------

def _gradient(height, width):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("shape,expected", [((375, 500), (256, 341)), ((500, 333), (384, 256)),
                                            ((256, 300), (256, 300)), ((100, 100), (256, 256))])
def test_resize_shorter_side_sizes_and_pixels(shape, expected):
    image = _gradient(*shape)
    out = preprocess.resize_shorter_side(image, 256)
    assert out.shape == expected + (3,) and out.dtype == np.uint8
    pil = Image.fromarray(image).resize(expected[::-1], Image.BILINEAR)
    np.testing.assert_array_equal(out, np.asarray(pil))


@pytest.mark.parametrize("shape,offset", [((256, 341), (16, 58)), ((257, 300), (16, 38)),
                                          ((225, 224), (0, 0))])
def test_center_crop_offsets(shape, offset):
    # torchvision: top = int(round((H - 224) / 2)), left likewise (Python's round, half to even).
    image = _gradient(*shape)
    out = preprocess.center_crop(image, 224)
    np.testing.assert_array_equal(out, image[offset[0]:offset[0] + 224, offset[1]:offset[1] + 224])
    with pytest.raises(ImageError, match="smaller than the 300x300 crop"):
        preprocess.center_crop(image, 300)


def test_square_thumbnail():
    image = _gradient(300, 451)
    out = preprocess.square_thumbnail(image, 224)
    square = Image.fromarray(image[:, 75:375])             # left = int((451 - 300) / 2) = 75
    square.thumbnail((224, 224), Image.LANCZOS)
    assert out.shape == (224, 224, 3)
    np.testing.assert_array_equal(out, np.asarray(square))


def test_prepare_content_steps_are_optional():
    image = _gradient(40, 60)
    np.testing.assert_array_equal(preprocess.prepare_content(image), image)
    assert preprocess.prepare_content(image, content_size=32, crop_size=30).shape == (30, 30, 3)
    assert preprocess.prepare_content(image, crop_size=40).shape == (40, 40, 3)


def test_import_loads_neither_beam_nor_tensorflow():
    code = ("import sys, nst_tf.scale, nst_tf.scale.dataset, nst_tf.scale.preprocess; "
            "nst_tf.scale.choose(0, 'a', 3); "
            "print(sorted(m for m in ('tensorflow', 'apache_beam') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

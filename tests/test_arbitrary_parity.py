"""Parity of nst_tf's arbitrary-style network with Magenta's own arbitrary_image_stylization graph.

Magenta's graph (tests/arbitrary_reference.py) gets benign random values for its 359 variables
and is saved with Magenta's Saver; ``magenta_compat.load_arbitrary_network`` loads the file and
``nst_tf.stylize`` / the networks must reproduce Magenta's float32 outputs within 1e-4 (we reach
~5e-6): one style, a mixture of two embeddings, strength 0.5 (identity interpolation), odd content
sizes, grayscale content, a batch of contents with one style; Magenta's style preprocessing too.
The other direction: a checkpoint written by ``write_arbitrary_checkpoint`` is restored by
Magenta's Saver and gives the same outputs.
"""

import os
import tarfile

import numpy as np
import pytest

import magenta_compat
import nst_tf
from magenta_compat import arbitrary as arb
from nst_tf import images
from nst_tf.models.arbitrary.family import preprocess_style
from nst_tf.networks import style_predictor_of
from tests.arbitrary_reference import MagentaArbitrary
from tests.conftest import test_image

pytestmark = pytest.mark.magenta

TOLERANCE = 1e-4
STYLE_SIZE = 64   # small style images keep the Inception trunk cheap


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ref = MagentaArbitrary(seed=0, style_size=STYLE_SIZE)
    folder = tmp_path_factory.mktemp("magenta_arbitrary") / "arbitrary_style_transfer"
    folder.mkdir()
    paths = {"V2": ref.save(str(folder / "model.ckpt"), "V2")}
    paths["V1"] = ref.save(str(folder.parent / "model_v1.ckpt"), "V1")
    return ref, paths


@pytest.fixture(scope="module")
def network(reference):
    return magenta_compat.load_arbitrary_network(reference[1]["V2"])


def uint8_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def stripes(height, width):
    """A structured uint8 style image (unlike noise, its embedding is far from a photo's)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 37) % 256, (y * 11) % 256, ((x + y) // 8 % 2) * 255],
                    axis=-1).astype(np.uint8)


def as_float(image):
    return images.uint8_to_float(image)


def max_diff(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert np.all(np.isfinite(theirs))
    return float(np.max(np.abs(ours - theirs)))


def assert_parity(ours, theirs, tolerance=TOLERANCE):
    diff = max_diff(ours, theirs)
    print(f"max abs diff {diff:.3g}")
    assert diff <= tolerance, f"max abs difference {diff:.3g} > {tolerance}"


def test_reference_output_is_benign(reference):
    """Guard: the random weights give a non-saturated image that depends on the style."""
    ref, _ = reference
    content = as_float(uint8_image(32, 40, 1))[None]
    one = ref.run(content, as_float(uint8_image(64, 64, 2))[None])
    two = ref.run(content, as_float(uint8_image(64, 64, 3))[None] * 0.5)
    assert 0.1 < one.std() and 0.0 < one.min() and one.max() < 1.0
    assert np.max(np.abs(one - two)) > 0.02


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_loads_every_variable(reference, version):
    ref, paths = reference
    network = magenta_compat.load_arbitrary_network(paths[version])
    ours, theirs = arb.network_variables(network), ref.get_values()
    assert sorted(ours) == sorted(theirs) and len(ours) == 359
    assert sum(v.size for v in ours.values()) == 11_005_826
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_style_preprocessing_matches_magenta(reference):
    ref, _ = reference
    for shape in ((50, 77), (90, 61), (64, 64)):
        image = uint8_image(*shape, seed=sum(shape))
        assert_parity(preprocess_style(as_float(image), STYLE_SIZE)[None],
                      ref.preprocess(image), 1e-6)


@pytest.mark.parametrize("size", [(37, 53), (5, 9), (67, 93)])
def test_one_style_odd_sizes(reference, network, size):
    """The network itself and nst_tf.stylize (uncropped: Magenta's 4·ceil(H/4) output)."""
    ref, paths = reference
    content = uint8_image(*size, seed=size[0])
    style = uint8_image(71, 64, seed=5)
    theirs = ref.run(as_float(content)[None], ref.preprocess(style))
    assert_parity(network([as_float(content)[None], ref.preprocess(style)]), theirs[0:1])
    ours = nst_tf.stylize(content, style, model=paths["V2"], style_size=STYLE_SIZE, crop=False)
    assert_parity(ours, theirs[0])
    cropped = nst_tf.stylize(content, style, model=paths["V2"], style_size=STYLE_SIZE)
    assert cropped.shape == (*size, 3)
    np.testing.assert_array_equal(cropped, ours[:size[0], :size[1]])


def test_embedding_matches_bottleneck(reference, network):
    ref, paths = reference
    style = uint8_image(80, 100, seed=7)
    theirs = ref.embed(ref.preprocess(style))
    assert_parity(style_predictor_of(network)(ref.preprocess(style)), theirs[:, 0, 0])
    assert_parity(nst_tf.style_embedding(style, model=paths["V2"], style_size=STYLE_SIZE),
                  theirs[:, 0, 0])


def test_mixture_of_two_styles(reference):
    ref, paths = reference
    content = uint8_image(41, 30, seed=8)
    styles = [uint8_image(64, 90, seed=9), uint8_image(77, 64, seed=10)]
    b1, b2 = (ref.embed(ref.preprocess(s)) for s in styles)
    theirs = ref.run_bottleneck(as_float(content)[None], 0.25 * b1 + 0.75 * b2)
    ours = nst_tf.stylize(content, styles, model=paths["V2"], style_weights=[1.0, 3.0],
                          style_size=STYLE_SIZE, crop=False)
    assert_parity(ours, theirs[0])


def test_strength_half(reference):
    """Magenta's identity interpolation: the content's own bottleneck (style preprocessing)."""
    ref, paths = reference
    content = uint8_image(48, 52, seed=11)
    style = stripes(64, 80)
    identity = ref.embed(ref.preprocess(content))
    bottleneck = 0.5 * ref.embed(ref.preprocess(style)) + 0.5 * identity
    theirs = ref.run_bottleneck(as_float(content)[None], bottleneck)
    ours = nst_tf.stylize(content, style, model=paths["V2"], strength=0.5,
                          style_size=STYLE_SIZE, crop=False)
    assert_parity(ours, theirs[0])
    full = nst_tf.stylize(content, style, model=paths["V2"], style_size=STYLE_SIZE, crop=False)
    assert max_diff(ours, full) > 0.01


def test_grayscale_content(reference):
    ref, paths = reference
    path = test_image("content_grey.jpg")
    content = images.load_image(path, max_size=48)
    np.testing.assert_array_equal(content[..., 0], content[..., 2])
    style = uint8_image(64, 70, seed=13)
    theirs = ref.run(content[None], ref.preprocess(style))
    assert_parity(nst_tf.stylize(content, style, model=paths["V2"], style_size=STYLE_SIZE,
                                 crop=False), theirs[0])


def test_batch_of_contents_one_style(reference):
    ref, paths = reference
    batch = np.stack([uint8_image(36, 44, seed=s) for s in (14, 15, 16)])
    style = uint8_image(64, 64, seed=17)
    theirs = ref.run(as_float(batch), ref.preprocess(style))
    assert_parity(nst_tf.stylize(batch, style, model=paths["V2"], style_size=STYLE_SIZE,
                                 crop=False, batch_size=2), theirs)
    # strength < 1 with a batch: each content image gets its own identity embedding.
    identity = ref.embed(np.concatenate([ref.preprocess(c) for c in batch]))
    bottleneck = 0.3 * ref.embed(ref.preprocess(style)) + 0.7 * identity
    assert_parity(nst_tf.stylize(batch, style, model=paths["V2"], style_size=STYLE_SIZE,
                                 crop=False, strength=0.3),
                  ref.run_bottleneck(as_float(batch), bottleneck))


def test_fast_mode_within_tolerance(reference):
    ref, paths = reference
    content = uint8_image(45, 62, seed=18)
    style = uint8_image(64, 64, seed=19)
    theirs = ref.run(as_float(content)[None], ref.preprocess(style))
    assert_parity(nst_tf.stylize(content, style, model=paths["V2"], style_size=STYLE_SIZE,
                                 crop=False, fast=True), theirs[0])


def test_magenta_restores_our_checkpoint(reference, network, tmp_path):
    ref, _ = reference
    values = ref.random_values(seed=21)
    for name, variable in arb.variable_slots(network).items():
        variable.assign(values[name])
    try:
        path = arb.write_arbitrary_checkpoint(network, str(tmp_path / "ours.ckpt"))
        sess = ref.restore(path)
        restored = ref.get_values(sess)
        for name, value in values.items():
            np.testing.assert_array_equal(restored[name], value, err_msg=name)
        content = as_float(uint8_image(29, 34, seed=22))[None]
        style = as_float(uint8_image(64, 64, seed=23))[None]
        assert_parity(network([content, style]), ref.run(content, style, sess=sess))
        sess.close()
    finally:
        original = ref.get_values()                        # the module-scoped network's values
        for name, variable in arb.variable_slots(network).items():
            variable.assign(original[name])


def test_tarball_and_folder(reference, tmp_path):
    """The release layout: arbitrary_style_transfer/model.ckpt.* inside a .tar.gz."""
    ref, paths = reference
    folder = os.path.dirname(paths["V2"])
    tarball = tmp_path / "arbitrary_style_transfer.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name in os.listdir(folder):
            if name.startswith("model.ckpt."):
                archive.add(os.path.join(folder, name), f"arbitrary_style_transfer/{name}")
    content = uint8_image(20, 24, seed=24)
    style = uint8_image(64, 64, seed=25)
    theirs = ref.run(as_float(content)[None], ref.preprocess(style))[0]
    for model in (str(tarball), folder):
        assert_parity(nst_tf.stylize(content, style, model=model, style_size=STYLE_SIZE,
                                     crop=False), theirs)

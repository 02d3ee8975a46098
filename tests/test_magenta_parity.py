"""Parity of nst_tf's pastiche network with Magenta's own image_stylization code.

Magenta's graph (tests/magenta_reference.py) gets random per-style parameters and is saved with
Magenta's Saver in V1 and V2 formats; ``magenta_compat.load_pastiche_network`` loads those files
and must reproduce Magenta's float32 outputs within 5e-5 (on the CPU), in list mode (labels) and
mixture mode (weights). The other direction too: checkpoints written by
``magenta_compat.write_checkpoint`` are restored by Magenta's Saver and give the same outputs.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import magenta_compat
from magenta_compat import checkpoint as ckpt
from nst_tf import images
from nst_tf.errors import CheckpointError
from nst_tf.networks import pastiche_config, pastiche_network, pastiche_output_size
from tests.conftest import test_image
from tests.magenta_reference import MagentaTransformer, import_magenta

pytestmark = pytest.mark.magenta

#: Float32 rounding: nst-tf sums the instance-norm moments by rows (accurate at any image size,
#: :func:`nst_tf.norm_statistics.two_pass_moments`), Magenta in one running sum per channel; the
#: two orders round differently, and random deep weights amplify that to up to 2.4e-5 here
#: (``tests/test_reflect_conv.py`` checks that both are as close to float64).
TOLERANCE = 5e-5

#: (num_styles, alpha) of the two reference graphs: the "varied" layout and a slim 10-style one.
CONFIGS = {"n32": (32, 1.0), "n10": (10, 0.5)}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """{key: (MagentaTransformer, {"V1": path, "V2": path})}, built once for the module.

    The 32-style graph also holds global_step, a vgg_16 variable and Adam slots, which the saved
    checkpoints therefore contain (like a Magenta training checkpoint).
    """
    import_magenta()
    built = {}
    for seed, (key, (num_styles, alpha)) in enumerate(sorted(CONFIGS.items())):
        ref = MagentaTransformer(num_styles, alpha, seed=seed, training_extras=key == "n32")
        folder = tmp_path_factory.mktemp(f"magenta_{key}")
        paths = {"V1": ref.save(str(folder / "model_v1.ckpt"), "V1"),
                 "V2": ref.save(str(folder / "model_v2.ckpt"), "V2", global_step=1000)}
        built[key] = (ref, paths)
    return built


@pytest.fixture(scope="module")
def loaded(references):
    """Networks loaded from the Magenta checkpoints: {(key, version, style_input): network}."""
    cache = {}

    def get(key, version, style_input="weights"):
        if (key, version, style_input) not in cache:
            path = references[key][1][version]
            cache[key, version, style_input] = magenta_compat.load_pastiche_network(
                path, style_input=style_input)
        return cache[key, version, style_input]

    return get


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).random((1, height, width, 3)).astype(np.float32)


def assert_parity(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert np.all(np.isfinite(theirs)), "Magenta's reference output has NaN/inf"
    diff = float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
    assert diff <= TOLERANCE, f"max abs difference {diff:.3g} > {TOLERANCE}"


def test_reference_styles_differ(references):
    """Guard: the random per-style parameters make styles give different images."""
    ref, _ = references["n32"]
    out = ref.run_list(random_image(24, 24), [0, 1])
    assert np.max(np.abs(out[0] - out[1])) > 0.05
    assert 0.02 < out.std() and 0.0 < out.min() and out.max() < 1.0


@pytest.mark.parametrize("version", ["V1", "V2"])
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_loaded_config_and_weights(references, loaded, key, version):
    ref, paths = references[key]
    network = loaded(key, version)
    num_styles, alpha = CONFIGS[key]
    assert pastiche_config(network) == {"num_styles": num_styles, "alpha": alpha,
                                        "style_input": "weights"}
    ours = magenta_compat.network_variables(network)
    theirs = ref.get_values()
    assert sorted(ours) == sorted(theirs) and len(ours) == 48
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("version", ["V1", "V2"])
@pytest.mark.parametrize("key", sorted(CONFIGS))
@pytest.mark.parametrize("size", [(37, 53), (64, 61), (5, 9)])
def test_list_mode(references, loaded, key, version, size):
    """Labels, one per image: Magenta's conditional_instance_norm (gather)."""
    ref, _ = references[key]
    num_styles, _ = CONFIGS[key]
    image = random_image(*size, seed=sum(size))
    labels = [0, num_styles - 1, 3]
    theirs = ref.run_list(image, labels)
    assert theirs.shape == (3, *pastiche_output_size(*size), 3)
    batch = np.repeat(image, len(labels), axis=0)
    ours = loaded(key, version, "labels")([batch, np.array(labels, np.int32)])
    assert_parity(ours, theirs)
    # The weights network with one-hot rows (one mixture per image) reproduces gather.
    one_hot = np.eye(num_styles, dtype=np.float32)[labels]
    assert_parity(loaded(key, version)([batch, one_hot]), theirs)


@pytest.mark.parametrize("version", ["V1", "V2"])
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_mixture_mode(references, loaded, key, version):
    """A weight vector (not normalized) for the whole batch: Magenta's weighted_instance_norm."""
    ref, _ = references[key]
    num_styles, _ = CONFIGS[key]
    rng = np.random.default_rng(7)
    weights = np.zeros(num_styles, np.float32)
    weights[[1, 4, num_styles - 1]] = [0.3, 0.9, 0.25]      # sum != 1 on purpose
    batch = np.concatenate([random_image(41, 30, seed=1), random_image(41, 30, seed=2)])
    theirs = ref.run_mixture(batch, weights)
    network = loaded(key, version)
    assert_parity(network([batch, weights[None]]), theirs)
    # Dense random weights, including negative ones.
    dense = rng.uniform(-0.5, 1.0, num_styles).astype(np.float32)
    assert_parity(network([batch, dense[None]]), ref.run_mixture(batch, dense))


def test_mixture_mode_compiled(references, loaded):
    """The tf.function path (graph optimizations on) stays within tolerance."""
    ref, _ = references["n32"]
    network = loaded("n32", "V1")
    weights = np.full(32, 1.0 / 32, np.float32)
    image = random_image(48, 36, seed=3)
    forward = tf.function(lambda x, w: network([x, w]))
    assert_parity(forward(image, weights[None]), ref.run_mixture(image, weights))


def test_grayscale_image(references, loaded):
    """A grayscale JPEG (1 component) tiled to RGB by load_image, as Magenta's loader does."""
    path = test_image("content_grey.jpg")
    image = images.load_image(path, max_size=48)[None]
    assert image.shape[-1] == 3
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    ref, _ = references["n32"]
    assert_parity(loaded("n32", "V1", "labels")([np.repeat(image, 2, 0), np.array([5, 30])]),
                  ref.run_list(image, [5, 30]))
    weights = np.eye(32, dtype=np.float32)[12] * 0.5 + np.eye(32, dtype=np.float32)[20] * 0.5
    assert_parity(loaded("n32", "V2")([image, weights[None]]), ref.run_mixture(image, weights))


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_magenta_restores_our_checkpoint(references, tmp_path, version):
    """write_checkpoint output → Magenta's Saver.restore → same outputs as our network."""
    num_styles, alpha = CONFIGS["n10"]
    ref, _ = references["n10"]
    network = pastiche_network(num_styles, alpha=alpha)
    rng = np.random.default_rng(11)
    for variable in network.weights:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32) +
                        (1.0 if "gamma" in variable.path else 0.0))
    path = magenta_compat.write_checkpoint(network, str(tmp_path / "ours.ckpt"), version=version)
    sess = ref.restore(path)
    try:
        restored = ref.get_values(sess)
        ours = magenta_compat.network_variables(network)
        for name in ours:
            np.testing.assert_array_equal(restored[name], ours[name], err_msg=name)
        image = random_image(29, 34, seed=4)
        weights = rng.uniform(0, 1, num_styles).astype(np.float32)
        assert_parity(network([image, weights[None]]), ref.run_mixture(image, weights, sess=sess))
        labels = [2, 9]
        net_labels = magenta_compat.load_pastiche_network(path, style_input="labels")
        assert_parity(net_labels([np.repeat(image, 2, 0), np.array(labels)]),
                      ref.run_list(image, labels, sess=sess))
    finally:
        sess.close()


def test_unrelated_entries_are_ignored(references):
    """global_step, vgg_16/* and Adam slots are in the checkpoint but not read into the network."""
    _, paths = references["n32"]
    names = set(ckpt.checkpoint_shapes(paths["V1"]))
    for extra in ("global_step", "vgg_16/conv1/conv1_1/weights", "beta1_power",
                  "transformer/contract/conv1/weights/Adam",
                  "transformer/expand/conv3/conv/InstanceNorm/gamma/Adam_1"):
        assert extra in names
    assert len(magenta_compat.read_checkpoint(paths["V1"])) > 48
    subset = magenta_compat.read_checkpoint(paths["V1"], names=["global_step", "nope"])
    assert list(subset) == ["global_step"]
    assert magenta_compat.infer_pastiche_config(magenta_compat.read_checkpoint(paths["V2"])) == (32, 1.0)


def test_wrong_num_styles_lists_misshaped_names(references):
    """The tensorflow/models#8233 situation: a 32-style checkpoint loaded with num_styles=10."""
    _, paths = references["n32"]
    with pytest.raises(CheckpointError) as info:
        magenta_compat.load_pastiche_network(paths["V1"], num_styles=10)
    message = str(info.value)
    assert paths["V1"] in message
    assert "32 mis-shaped" in message
    assert "transformer/residual/residual3/conv1/InstanceNorm/gamma: [32, 128] vs [10, 128]" in message
    assert "transformer/expand/conv3/conv/InstanceNorm/beta: [32, 3] vs [10, 3]" in message
    assert "missing" not in message and "unexpected" not in message
    assert "num_styles=32" in message  # says what the checkpoint holds
    # Slots and vgg variables are not reported as unexpected.
    assert "Adam" not in message and "vgg_16" not in message


def test_wrong_alpha_lists_kernel_shapes(references):
    _, paths = references["n10"]
    with pytest.raises(CheckpointError, match=r"transformer/contract/conv1/weights: "
                                              r"\[9, 9, 3, 16\] vs \[9, 9, 3, 32\]"):
        magenta_compat.load_pastiche_network(paths["V2"], alpha=1.0)


def test_directory_picks_latest(references, tmp_path):
    """A directory of several Saver checkpoints loads the one named in its 'checkpoint' file."""
    ref, _ = references["n10"]
    sess = ref.new_session()
    try:
        for step, seed in ((1, 21), (2, 22), (3, 23)):
            ref.set_values(ref.random_values(seed), sess=sess)
            ref.save(str(tmp_path / "model.ckpt"), "V2", global_step=step, sess=sess)
        latest = ref.get_values(sess)
    finally:
        sess.close()
    network = magenta_compat.load_pastiche_network(str(tmp_path))
    assert network.checkpoint_path.endswith("model.ckpt-3")
    ours = magenta_compat.network_variables(network)
    for name in latest:
        np.testing.assert_array_equal(ours[name], latest[name], err_msg=name)
    assert os.path.basename(ckpt.resolve_checkpoint_path(str(tmp_path))) == "model.ckpt-3"

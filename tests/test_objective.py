"""StyleObjective: parts against NumPy float64 on the extractor's own features; blends; errors."""

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import losses, objective as objective_module
from nst_tf.errors import ConfigError, ImageError, LayerError, NSTError, StyleWeightsError
from nst_tf.features import FeatureExtractor
from nst_tf.objective import StyleObjective, Term
from numpy_losses import (np_gaussian_w2, np_gram, np_mean_std_loss,
                          np_sliced_wasserstein_and_grad, np_tv_and_grad)

RTOL = 1e-5  # float32 TF vs float64 NumPy on the same float32 features


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor("vgg19", layers=["conv1_1", "relu2_1", "conv3_1"], weights=None,
                            seed=1)


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(42)
    return {
        "content": rng.random((1, 40, 48, 3), np.float32),
        "style_a": rng.random((1, 36, 52, 3), np.float32) ** 2,
        "style_b": rng.random((40, 40, 3), np.float32),
        "image": rng.random((1, 40, 48, 3), np.float32),
    }


def feats64(extractor, image):
    return {k: v.numpy().astype(np.float64) for k, v in extractor(image).items()}


def rel_err(actual, expected):
    return abs(float(actual) - float(expected)) / max(abs(float(expected)), 1e-300)


def np_style(name, f, target, channels):
    if name == "gram":
        return np.mean((np_gram(f) - np_gram(target)) ** 2)
    if name == "mean_std":
        return np_mean_std_loss(f, target)
    if name == "gaussian_w2":
        return np_gaussian_w2(f, target)
    directions = losses.random_directions(channels, None, seed=0, dtype=tf.float64).numpy()
    return np_sliced_wasserstein_and_grad(f, target, directions)[0]


@pytest.mark.parametrize("style_loss", sorted(losses.STYLE_LOSSES))
def test_parts_match_numpy(extractor, pictures, style_loss):
    obj = StyleObjective(extractor, pictures["content"], [pictures["style_a"], pictures["style_b"]],
                         style_blend_weights=[1.0, 3.0],
                         content_layers={"conv2_1": 2.0, "block3_conv1": 1.0},
                         style_layers=["relu1_1", "conv2_1"], content_weight=2.5,
                         style_weight=0.75, tv_weight=10.0, style_loss=style_loss)
    total, parts = obj(pictures["image"])

    fx = feats64(extractor, pictures["image"])
    fc = feats64(extractor, pictures["content"])
    fs = [feats64(extractor, pictures["style_a"]), feats64(extractor, pictures["style_b"][None])]
    content = 2.5 * (2 / 3 * np.mean((fx["block2_conv1"] - fc["block2_conv1"]) ** 2)
                     + 1 / 3 * np.mean((fx["block3_conv1"] - fc["block3_conv1"]) ** 2))
    style = 0.75 * sum(
        beta * 0.5 * np_style(style_loss, fx[layer], f[layer], fx[layer].shape[-1])
        for beta, f in zip([0.25, 0.75], fs) for layer in ("block1_conv1", "block2_conv1"))
    tv = 10.0 * np_tv_and_grad(pictures["image"].astype(np.float64), "l2")[0]

    assert set(parts) == {"content", "style", "tv"}
    assert rel_err(parts["content"], content) <= RTOL
    assert rel_err(parts["style"], style) <= RTOL
    assert rel_err(parts["tv"], tv) <= RTOL
    assert rel_err(total, parts["content"] + parts["style"] + parts["tv"]) <= 1e-6


def test_blend_is_weighted_sum_of_single_style_losses(extractor, pictures):
    kwargs = dict(style_layers=["conv1_1", "conv2_1"], content_weight=0.0, tv_weight=0.0,
                  style_weight=1.0)
    both = StyleObjective(extractor, None, [pictures["style_a"], pictures["style_b"]],
                          style_blend_weights=[2, 6], **kwargs)
    one = StyleObjective(extractor, None, [pictures["style_a"]], **kwargs)
    two = StyleObjective(extractor, None, pictures["style_b"], **kwargs)
    np.testing.assert_allclose(both.style_blend_weights, [0.25, 0.75])
    x = pictures["image"]
    expected = 0.25 * one(x)[1]["style"] + 0.75 * two(x)[1]["style"]
    assert rel_err(both(x)[1]["style"], expected) <= RTOL


def test_gram_blend_has_the_gradient_of_the_blended_target(extractor, pictures):
    """Σβᵢ mean((G − Tᵢ)²) = mean((G − ΣβᵢTᵢ)²) + const, so the gradients agree."""
    layer = "block2_conv1"
    obj = StyleObjective(extractor, None, [pictures["style_a"], pictures["style_b"]],
                         style_blend_weights=[0.3, 0.7], style_layers=[layer], tv_weight=0.0,
                         style_weight=1.0)
    blended = (0.3 * np_gram(feats64(extractor, pictures["style_a"])[layer])
               + 0.7 * np_gram(feats64(extractor, pictures["style_b"][None])[layer]))
    x = tf.constant(pictures["image"])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = obj(x)[0]
        reference = losses.gram_loss(extractor(x)[layer], tf.constant(blended, tf.float32))
    g1, g2 = tape.gradient(ours, x).numpy(), tape.gradient(reference, x).numpy()
    assert np.linalg.norm(g1 - g2) / np.linalg.norm(g2) <= 1e-4


def test_zero_blend_weight_ignores_that_style(extractor, pictures):
    kwargs = dict(style_layers=["conv1_1"], tv_weight=0.0)
    both = StyleObjective(extractor, None, [pictures["style_a"], pictures["style_b"]],
                          style_blend_weights=[0, 1], **kwargs)
    only_b = StyleObjective(extractor, None, [pictures["style_b"]], **kwargs)
    x = pictures["image"]
    assert rel_err(both(x)[0], only_b(x)[0]) <= 1e-6


@pytest.mark.parametrize("weights, message", [
    ([1.0], "got 1 style blend weights"),
    ([1.0, 2.0, 3.0], "got 3 style blend weights"),
    ([1.0, float("nan")], "nan"),
    ([float("inf"), 1.0], "inf"),
    ([1.0, -0.5], "-0.5"),
    ([0, 0.0], "all zero"),
    (["heavy", 1.0], "heavy"),
])
def test_bad_blend_weights(extractor, pictures, weights, message):
    with pytest.raises(StyleWeightsError, match=message):
        StyleObjective(extractor, pictures["content"], [pictures["style_a"], pictures["style_b"]],
                       style_blend_weights=weights, content_layers=["conv2_1"],
                       style_layers=["conv1_1"])


def test_normalize_blend_weights():
    np.testing.assert_allclose(objective_module.normalize_blend_weights(None, 4), 0.25)
    np.testing.assert_allclose(objective_module.normalize_blend_weights((1, 3), 2), [0.25, 0.75])
    np.testing.assert_allclose(objective_module.normalize_blend_weights(np.array([2.0]), 1), [1])
    with pytest.raises(StyleWeightsError, match="at least one style image"):
        objective_module.normalize_blend_weights(None, 0)
    with pytest.raises(StyleWeightsError, match="list of numbers"):
        objective_module.normalize_blend_weights({0: 1.0}, 1)


def test_layer_errors(extractor, pictures):
    with pytest.raises(LayerError, match="block4_conv2.*not computed.*FeatureExtractor"):
        StyleObjective(extractor, pictures["content"], [], content_layers=["conv4_2"])
    with pytest.raises(LayerError, match="unknown layer 'conv9_9'"):
        StyleObjective(extractor, None, [pictures["style_a"]], style_layers=["conv9_9"])
    with pytest.raises(LayerError, match="empty"):
        StyleObjective(extractor, None, [pictures["style_a"]], style_layers=[])
    with pytest.raises(ConfigError, match="all zero"):
        StyleObjective(extractor, None, [pictures["style_a"]], style_layers={"conv1_1": 0})
    with pytest.raises(ConfigError, match="conv1_1.*-1"):
        StyleObjective(extractor, None, [pictures["style_a"]], style_layers={"conv1_1": -1})


@pytest.mark.parametrize("option", ["content_weight", "style_weight", "tv_weight"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_loss_weights(extractor, pictures, option, value):
    with pytest.raises(ConfigError, match=option):
        StyleObjective(extractor, pictures["content"], [pictures["style_a"]],
                       content_layers=["conv2_1"], style_layers=["conv1_1"], **{option: value})


def test_other_errors(extractor, pictures):
    with pytest.raises(ConfigError, match="needs a content image, a style image"):
        StyleObjective(extractor, None, [])
    with pytest.raises(ConfigError, match="unknown style loss"):
        StyleObjective(extractor, None, [pictures["style_a"]], style_layers=["conv1_1"],
                       style_loss="mrf")
    with pytest.raises(ConfigError, match="tv_kind"):
        StyleObjective(extractor, pictures["content"], [], content_layers=["conv1_1"],
                       tv_kind="l3")
    tiny = np.zeros((1, 2, 2, 3), np.float32)  # conv3_1 needs at least 4x4 pixels
    with pytest.raises(ImageError, match="style image 1 is 2x2 pixels"):
        StyleObjective(extractor, None, [pictures["style_a"], tiny], style_layers=["conv1_1"])
    with pytest.raises(ImageError, match="content image"):
        StyleObjective(extractor, np.zeros((1, 8, 8, 4), np.float32), [],
                       content_layers=["conv1_1"])
    obj = StyleObjective(extractor, pictures["content"], [], content_layers=["conv1_1"])
    with pytest.raises(ImageError, match="48x40"):
        obj(np.zeros((1, 32, 32, 3), np.float32))
    assert issubclass(StyleWeightsError, NSTError)


def test_content_only_and_style_only(extractor, pictures):
    x = pictures["image"]
    content_only = StyleObjective(extractor, pictures["content"], [], content_layers=["conv2_1"])
    assert float(content_only(x)[1]["style"]) == 0.0
    assert float(content_only(pictures["content"])[1]["content"]) == 0.0
    style_only = StyleObjective(extractor, None, [pictures["style_a"]], style_layers=["conv2_1"],
                                tv_weight=0.0)
    assert float(style_only(x)[1]["content"]) == 0.0
    assert float(style_only(x)[1]["style"]) > 0.0
    assert style_only.content_layers == {}


def test_targets_computed_once_and_compiles(extractor, pictures):
    calls = []

    class Counting:
        backbone, layers, min_input_size = extractor.backbone, extractor.layers, 1
        resolve_layer = staticmethod(extractor.resolve_layer)

        def __call__(self, image):
            calls.append(tuple(image.shape))
            return extractor(image)

    obj = StyleObjective(Counting(), pictures["content"], [pictures["style_a"],
                                                           pictures["style_b"]],
                         content_layers=["conv2_1"], style_layers=["conv1_1", "conv2_1"])
    assert calls == []  # targets are computed on first use (a tiled objective never needs them)
    targets = obj.targets
    assert len(calls) == 3  # content + two styles, once each
    assert obj.targets is not targets and len(calls) == 3  # the same tensors, not recomputed
    step = tf.function(lambda img: obj(img))
    x = tf.constant(pictures["image"])
    eager_total = obj(x)[0]
    for _ in range(3):
        total, parts = step(x)
    assert len(calls) == 3 + 1 + 1  # one eager call, one trace; later calls reuse the graph
    assert rel_err(total, eager_total) <= 1e-6
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = step(x)[0]
    assert np.all(np.isfinite(tape.gradient(total, x).numpy()))


def test_first_use_inside_a_tf_function(extractor, pictures):
    """Targets first needed while a tf.function traces are computed eagerly (constants, not
    tensors of that graph), so the compiled objective equals the eager one and keeps working."""
    make = lambda: StyleObjective(extractor, pictures["content"], [pictures["style_a"]],  # noqa
                                  content_layers=["conv2_1"], style_layers=["conv1_1", "conv3_1"])
    x = tf.constant(pictures["image"])
    compiled = make()
    step = tf.function(lambda img: compiled(img)[0])
    total = step(x)
    assert rel_err(total, make()(x)[0]) <= 1e-6
    assert rel_err(step(x * 0.5), make()(x * 0.5)[0]) <= 1e-6
    assert all(not tf.is_symbolic_tensor(t) for t in tf.nest.flatten(compiled.targets))


def test_default_weights_and_layers(pictures):
    ex = FeatureExtractor("vgg19", weights=None)  # default layers: content conv4_2, style x_1
    obj = StyleObjective(ex, pictures["content"], [pictures["style_a"]])
    assert obj.content_weight == objective_module.DEFAULT_CONTENT_WEIGHT
    assert obj.style_weight == objective_module.DEFAULT_STYLE_WEIGHT
    assert obj.tv_weight == objective_module.DEFAULT_TV_WEIGHT
    assert obj.content_layers == {"block4_conv2": 1.0}
    assert list(obj.style_layers) == [f"block{i}_conv1" for i in range(1, 6)]
    np.testing.assert_allclose(list(obj.style_layers.values()), 0.2)
    for name in losses.STYLE_LOSSES:
        o = StyleObjective(ex, None, [pictures["style_a"]], style_loss=name)
        assert o.style_weight == objective_module.DEFAULT_STYLE_WEIGHTS[name]


def test_extra_terms_are_added_to_the_total_and_reported(extractor, pictures):
    kwargs = dict(content_layers=["relu2_1"], style_layers=["conv1_1", "conv3_1"])
    plain = StyleObjective(extractor, pictures["content"], [pictures["style_a"]], **kwargs)
    target = np.float32(0.25)
    extra = StyleObjective(extractor, pictures["content"], [pictures["style_a"]], **kwargs,
                           extra_terms={"temporal": lambda x: 3.0 * tf.reduce_mean(
                               (x - target) ** 2)})
    total, parts = plain(pictures["image"])
    total_x, parts_x = extra(pictures["image"])
    expected = 3.0 * np.mean((pictures["image"].astype(np.float64) - 0.25) ** 2)
    assert float(parts_x["temporal"]) == pytest.approx(expected, rel=1e-5)
    assert float(total_x) == pytest.approx(float(total) + expected, rel=1e-5)
    assert {k: float(v) for k, v in parts.items()} == pytest.approx(
        {k: float(v) for k, v in parts_x.items() if k != "temporal"})
    with pytest.raises(ConfigError, match="style"):
        StyleObjective(extractor, pictures["content"], [pictures["style_a"]], **kwargs,
                       extra_terms={"style": lambda x: 0.0})


def test_a_batch_of_style_images_is_that_many_styles(extractor, pictures):
    """A ``[N, H, W, 3]`` array is N style images (N = 2 here, not the height 30)."""
    rng = np.random.default_rng(3)
    batch = rng.random((2, 30, 34, 3), np.float32)
    kwargs = dict(content_layers=["relu2_1"], style_layers=["conv1_1"])
    stacked = StyleObjective(extractor, pictures["content"], batch, **kwargs)
    listed = StyleObjective(extractor, pictures["content"], [batch[0], batch[1]], **kwargs)
    assert len(stacked.style_targets) == 2
    flat = [tf.nest.flatten(o.style_targets) for o in (stacked, listed)]
    assert len(flat[0]) == len(flat[1]) == 2
    for a, b in zip(*flat):
        np.testing.assert_array_equal(a, b)


def _weighted_mse(image, target, weight):
    return weight * tf.reduce_mean(tf.square(image - target))


def _weighted_mae(image, target, weight):
    return weight * tf.reduce_mean(tf.abs(image - target))


def test_retarget_swaps_term_data_and_refuses_terms_that_do_not_fit(extractor, pictures):
    image = pictures["image"]
    zeros, half = np.zeros_like(image), np.full_like(image, 0.5)
    objective = StyleObjective(extractor, pictures["content"], [pictures["style_a"]],
                               content_layers=["relu2_1"], style_layers=["conv1_1"],
                               extra_terms={"temporal": Term(_weighted_mse, target=zeros,
                                                             weight=2.0)})

    def temporal():
        return float(objective(image)[1]["temporal"])

    before = temporal()
    assert before == pytest.approx(2.0 * np.mean(image.astype(np.float64) ** 2), rel=1e-5)
    same = dict(target=half, weight=2.0)
    refused = {"another name": {"other": Term(_weighted_mse, **same)},
               "one name more": {"temporal": Term(_weighted_mse, **same),
                                 "other": Term(_weighted_mse, **same)},
               "another function": {"temporal": Term(_weighted_mae, **same)},
               "other shapes": {"temporal": Term(_weighted_mse, target=half[:, :20], weight=2.0)},
               "not a Term": {"temporal": lambda x: tf.reduce_mean(x)}}
    for why, terms in refused.items():
        assert objective.retarget(extra_terms=terms) is False, why
        assert temporal() == before, why  # nothing changed
    assert objective.retarget(extra_terms={"temporal": Term(_weighted_mse, target=half,
                                                            weight=3.0)}) is True
    expected = 3.0 * np.mean((image.astype(np.float64) - 0.5) ** 2)
    assert temporal() == pytest.approx(expected, rel=1e-5)

"""TF-Hub: our SavedModel has the interface of magenta/arbitrary-image-stylization-v1-256, and
``model="hub:<folder>"`` runs such modules (loaded with tensorflow_hub.load) with nst_tf's
preprocessing. Nothing is downloaded: the modules are exported locally."""

import numpy as np
import pytest
import tensorflow as tf

import nst_tf
from nst_tf.errors import CheckpointError, ConfigError
from nst_tf.models.arbitrary.hub import load_hub
from test_arbitrary_api import photo, random_arbitrary


@pytest.fixture(scope="module")
def net():
    return random_arbitrary()


@pytest.fixture(scope="module")
def exported(net, tmp_path_factory):
    # Through nst_tf.export_saved_model, which writes arbitrary networks as hub modules.
    return nst_tf.export_saved_model(net, str(tmp_path_factory.mktemp("hub") / "module"))


class CallOnly(tf.Module):
    """Magenta's hub module interface only: module(content, style) -> [image]; no embedding.
    (It wraps a loaded module, which is much faster to save than a Keras network.)"""

    def __init__(self, module):
        super().__init__()
        self.module = module

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                  tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, content, style):
        return [self.module(content, style)[0]]


@pytest.fixture(scope="module")
def module(exported):
    """The exported module, loaded with tensorflow_hub.load (as model='hub:...' does)."""
    return load_hub(exported).module


def test_exported_module_has_the_hub_signature(net, module):
    content, style = photo(33, 35)[None], photo(64, 64, 1)[None]
    expected = net([content, style]).numpy()
    outputs = module(tf.constant(content), tf.constant(style))
    assert isinstance(outputs, (list, tuple))
    np.testing.assert_allclose(outputs[0].numpy(), expected, atol=1e-5)
    signature = module.signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == ["placeholder", "placeholder_1"]
    result = signature(placeholder=tf.constant(content), placeholder_1=tf.constant(style))
    assert list(result) == ["output_0"]
    np.testing.assert_allclose(result["output_0"].numpy(), expected, atol=1e-5)


def test_stylize_through_hub_equals_the_network(net, exported):
    content = photo(30, 41)
    styles = [photo(64, 64, 1), photo(70, 64, 2)]
    for options in ({}, {"style_weights": [0.2, 0.8]}, {"strength": 0.5}):
        np.testing.assert_allclose(
            nst_tf.stylize(content, styles, model="hub:" + exported, style_size=64, **options),
            nst_tf.stylize(content, styles, model=net, style_size=64, **options), atol=1e-5)
    np.testing.assert_allclose(nst_tf.style_embedding(styles, model="hub:" + exported,
                                                      style_size=64),
                               nst_tf.style_embedding(styles, model=net, style_size=64),
                               atol=1e-5)


def test_module_without_embedding(net, module, tmp_path):
    path = str(tmp_path / "call_only")
    tf.saved_model.save(CallOnly(module), path)
    assert load_hub(path).embed is None
    content, style = photo(30, 41), photo(64, 64, 1)
    np.testing.assert_allclose(nst_tf.stylize(content, [style, style], model="hub:" + path,
                                              style_size=64),
                               nst_tf.stylize(content, [style, style], model=net,
                                              style_size=64), atol=1e-5)
    with pytest.raises(ConfigError, match="does not expose"):
        nst_tf.stylize(content, [style, style], model="hub:" + path, style_weights=[1, 1])


def test_bad_handle(tmp_path):
    with pytest.raises(CheckpointError, match="cannot load TF-Hub module"):
        nst_tf.stylize(photo(), photo(64, 64), model="hub:" + str(tmp_path))


@pytest.mark.slow
@pytest.mark.magenta
def test_magentas_own_hub_export_runs_through_hub_prefix(tmp_path):
    """Magenta's export_hub.py module (wrap_function + prune, list output), built from its own
    graph with benign random weights and saved here, runs through model='hub:...' and gives
    the same image as the same weights loaded as a checkpoint (~60 s: slow)."""
    import importlib

    import tf_slim as slim

    from tests.arbitrary_reference import MagentaArbitrary

    ref = MagentaArbitrary(seed=2, style_size=64)
    export_hub = importlib.import_module(
        "magenta.models.arbitrary_image_stylization.export_hub")
    with slim.arg_scope([slim.batch_norm], updates_collections=None):
        module = export_hub.create_hub_module_object()
    values = ref.random_values(2)
    for variable in module.variables:
        variable.assign(values[variable.name.split(":")[0]])
    folder = str(tmp_path / "magenta_hub")
    tf.saved_model.save(module, folder, signatures=module.__call__)
    checkpoint = ref.save(str(tmp_path / "model.ckpt"))
    content, style = photo(37, 50, 7), photo(70, 64, 8)
    ours = nst_tf.stylize(content, style, model=checkpoint, style_size=64, crop=False)
    np.testing.assert_allclose(nst_tf.stylize(content, style, model="hub:" + folder,
                                              style_size=64, crop=False), ours, atol=1e-5)
    with pytest.raises(ConfigError, match="does not expose"):
        nst_tf.stylize(content, style, model="hub:" + folder, strength=0.5)


def test_a_hub_module_cannot_be_run_by_patches(exported, tmp_path):
    """A TF-Hub module is a graph without Keras layers: no footprint to read, so
    ``tile_size`` is a one-line error naming the family, not a wrong image."""
    content, style = photo(40, 48), photo(64, 64, 1)
    for run in (lambda: nst_tf.stylize(content, style, model="hub:" + exported, tile_size=16,
                                       style_size=64),
                lambda: nst_tf.stylize_to_file(content, str(tmp_path / "out.png"), style,
                                               model="hub:" + exported, tile_size=16,
                                               style_size=64)):
        with pytest.raises(ConfigError, match="cannot be run by patches") as error:
            run()
        assert "\n" not in str(error.value)
    assert not (tmp_path / "out.png").exists()

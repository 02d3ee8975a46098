"""nst_tf.stylize dispatch (nst_tf.families): one entry point resolves every kind of model."""

import numpy as np
import pytest

import nst_tf
from magenta_compat.checkpoint import write_checkpoint
from nst_tf import families
from nst_tf.errors import CheckpointError, ConfigError, StyleWeightsError
from nst_tf.networks import johnson_network
from nst_tf.models.pastiche.family import PasticheFamily
from nst_tf.models.johnson.family import SingleStyleFamily
from pastiche_helpers import random_pastiche


@pytest.fixture(scope="module")
def pastiche():
    return random_pastiche(3, alpha=0.25, seed=1)


@pytest.fixture(scope="module")
def johnson():
    net = johnson_network(alpha=0.25, num_residual=1)
    rng = np.random.default_rng(0)
    for w in net.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype(np.float32))
    return net


def test_network_objects_resolve_to_their_family(pastiche, johnson):
    assert isinstance(families.resolve(pastiche)[0], PasticheFamily)
    assert isinstance(families.resolve(johnson)[0], SingleStyleFamily)


def test_pastiche_through_stylize_equals_network(pastiche):
    image = np.random.default_rng(0).random((20, 24, 3), np.float32)
    out = nst_tf.stylize(image, {0: 0.3, 2: 0.7}, model=pastiche)
    expected = pastiche([image[None], np.array([[0.3, 0.0, 0.7]], np.float32)]).numpy()[0]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_checkpoint_path_is_dispatched_by_its_variables(tmp_path, pastiche):
    path = str(tmp_path / "model.ckpt")
    write_checkpoint(pastiche, path, version="V1")
    family, network = families.resolve(path)
    assert isinstance(family, PasticheFamily) and network is not pastiche
    image = np.random.default_rng(1).random((16, 16, 3), np.float32)
    np.testing.assert_allclose(nst_tf.stylize(image, 1, model=path),
                               nst_tf.stylize(image, 1, model=pastiche), atol=1e-6)


def test_keras_file_of_a_single_style_network(tmp_path, johnson):
    path = str(tmp_path / "johnson.keras")
    johnson.save(path)
    batch = np.random.default_rng(2).random((2, 18, 21, 3), np.float32)
    out = nst_tf.stylize(batch, model=path, crop=True)
    assert out.shape == (2, 18, 21, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, johnson(batch).numpy()[:, :18, :21], atol=1e-5)


def test_a_damaged_keras_file_is_one_line_with_keras_own_reason(tmp_path, johnson):
    import keras

    path = tmp_path / "damaged.keras"
    johnson.save(path)
    path.write_bytes(path.read_bytes()[:200])  # cut off: the zip's directory is gone
    with pytest.raises(Exception) as direct:
        keras.saving.load_model(path, compile=False)
    reason = f"{type(direct.value).__name__}: {str(direct.value).strip().splitlines()[0]}"
    with pytest.raises(CheckpointError) as ours:
        nst_tf.stylize(np.zeros((8, 8, 3), np.float32), model=str(path))
    assert str(ours.value) == f"cannot load Keras model {path}: {reason}"


def test_errors_name_the_problem(tmp_path, pastiche, johnson):
    image = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ConfigError, match="strength do not apply|strength does not apply"):
        nst_tf.stylize(image, 0, model=pastiche, strength=0.5)
    with pytest.raises(ConfigError, match="takes no style"):
        nst_tf.stylize(image, 3, model=johnson)
    with pytest.raises(StyleWeightsError, match="needs a style"):
        nst_tf.stylize(image, model=pastiche)
    with pytest.raises(CheckpointError, match="neither a preset .*varied"):
        nst_tf.stylize(image, 0, model=str(tmp_path / "missing.ckpt"))
    with pytest.raises(ConfigError, match="must be a preset name"):
        nst_tf.stylize(image, 0, model=42)
    with pytest.raises(ConfigError, match="belongs to no known family"):
        import keras
        nst_tf.stylize(image, 0, model=keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))

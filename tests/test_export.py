"""nst_tf.export and nst-export: the exported models compute what the Keras network computes.

SavedModel: reloaded with ``tf.saved_model.load`` and compared with the Keras network at two image
sizes (≤ 1e-5; the same TF kernels run, so the difference is 0 in practice).
TFLite: run with the TFLite interpreter (XNNPACK CPU kernels) and compared at the fixed size; its
convolutions accumulate in a different order than TF's oneDNN kernels, so float32 results differ
by a few ulp per layer over 16 layers: 1e-4 on a [0, 1] output is well above that and far below
any real error (a wrong style or layer moves pixels by > 1e-2).
"""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from magenta_compat.checkpoint import write_checkpoint
from nst_tf.cli import export as export_cli
from nst_tf.errors import ConfigError
from nst_tf.export import export_saved_model, export_tflite
from nst_tf.io import OutputPathError
from tests.pastiche_helpers import random_pastiche

N = 3


@pytest.fixture(scope="module")
def net():
    return random_pastiche(N, seed=5)


def keras_output(network, image, weights):
    return network([image, np.asarray(weights, np.float32)[None]]).numpy()


def run_tflite(path, image, weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # tf.lite.Interpreter's deprecation notice
        # Plain built-in kernels, without the XNNPACK delegate: the stricter runtime (it rejects
        # strided slices of more than 5 dimensions, which XNNPACK would hide).
        interpreter = tf.lite.Interpreter(
            model_path=str(path),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType
            .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(image=image, style_weights=np.asarray(weights, np.float32))["stylized_image"]


@pytest.fixture(scope="module")
def saved_model(net, tmp_path_factory):
    return export_saved_model(net, str(tmp_path_factory.mktemp("export") / "served"))


def test_saved_model_matches_keras(net, saved_model, rng):
    served = tf.saved_model.load(saved_model).signatures["serving_default"]
    _, inputs = served.structured_input_signature
    assert inputs["image"].shape.as_list() == [1, None, None, 3]
    assert inputs["style_weights"].shape.as_list() == [N]
    for (height, width), weights in [((64, 64), [0.2, 0.0, 1.1]), ((37, 53), [0.0, 1.0, 0.0])]:
        image = rng.random((1, height, width, 3)).astype(np.float32)
        out = served(image=tf.constant(image),
                     style_weights=tf.constant(weights, tf.float32))["stylized_image"].numpy()
        expected = keras_output(net, image, weights)
        assert out.shape == expected.shape == (1, 4 * -(-height // 4), 4 * -(-width // 4), 3)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_saved_model_replaces_atomically_and_checks_path(net, saved_model, tmp_path):
    first = sorted(os.listdir(saved_model))
    stamp = os.path.join(saved_model, "stale_marker")
    open(stamp, "w").close()
    export_saved_model(net, saved_model)               # replace an existing export
    assert sorted(os.listdir(saved_model)) == first    # the old folder is gone as a whole
    assert os.listdir(os.path.dirname(saved_model)) == ["served"]   # no temporary folders
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        export_saved_model(net, str(tmp_path / "a_file"))
    with pytest.raises(OutputPathError, match="does not exist"):
        export_saved_model(net, str(tmp_path / "no" / "such" / "dir"))


def test_tflite_matches_keras(net, tmp_path, rng):
    path = export_tflite(net, str(tmp_path / "model.tflite"), image_size=64)
    image = rng.random((1, 64, 64, 3)).astype(np.float32)
    for weights in ([0.0, 0.0, 1.0], [0.5, 0.7, 0.0]):
        out = run_tflite(path, image, weights)
        assert out.shape == (1, 64, 64, 3)
        np.testing.assert_allclose(out, keras_output(net, image, weights), atol=1e-4, rtol=0)


def test_tflite_dynamic_quantization_is_smaller_and_close(net, tmp_path, rng):
    small = export_tflite(net, str(tmp_path / "dyn.tflite"), image_size=(32, 48),
                          quantize="dynamic")
    float_bytes = 4 * sum(int(np.prod(w.shape)) for w in net.weights)
    # int8 kernels: a quarter of the float weights, plus the graph (one float copy would be
    # over 1.0; measured 0.53 with the row-summed normalization moments)
    assert os.path.getsize(small) < 0.6 * float_bytes
    image = rng.random((1, 32, 48, 3)).astype(np.float32)
    out = run_tflite(small, image, [1.0, 0.0, 0.0])
    assert out.shape == (1, 32, 48, 3)
    error = np.abs(out - keras_output(net, image, [1.0, 0.0, 0.0]))
    assert error.mean() < 0.017 and error.max() < 0.12   # measured 0.0084 and 0.061


@pytest.mark.parametrize("kwargs, fragment", [
    ({"image_size": 4}, "image_size"),
    ({"image_size": (64,)}, "image_size"),
    ({"quantize": "int4"}, "quantize"),
])
def test_tflite_bad_options(net, tmp_path, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        export_tflite(net, str(tmp_path / "m.tflite"), **kwargs)
    assert not os.path.exists(tmp_path / "m.tflite")


def test_export_cli(net, tmp_path, capsys, rng):
    checkpoint = write_checkpoint(net, str(tmp_path / "model.ckpt"))
    tflite = str(tmp_path / "m.tflite")
    assert export_cli.main(["nst-export", f"--checkpoint={checkpoint}", f"--output={tflite}",
                            "--image_size=32"]) == 0
    assert capsys.readouterr().out.strip() == tflite
    image = rng.random((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(run_tflite(tflite, image, [0, 1, 0]),
                               keras_output(net, image, [0, 1, 0]), atol=1e-4, rtol=0)
    folder = str(tmp_path / "sm")
    assert export_cli.main(["nst-export", f"--checkpoint={checkpoint}", f"--output={folder}",
                            f"--num_styles={N}"]) == 0
    assert os.path.isfile(os.path.join(folder, "saved_model.pb"))
    assert export_cli.main(["nst-export", f"--checkpoint={checkpoint}", f"--output={folder}",
                            "--num_styles=32"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "num_styles=32 was given" in err

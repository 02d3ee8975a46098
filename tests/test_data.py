"""nst_tf.data: listing, decoding, cropping, determinism, corrupt files, TFRecords, style images."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_tf import data
from nst_tf.errors import ImageError, NSTError
from tests.conftest import test_image


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def image_folder(tmp_path, rng):
    """Six images of mixed sizes and modes (RGB PNG, grayscale JPEG, RGBA PNG) in two folders."""
    (tmp_path / "sub").mkdir()
    for i in range(4):
        array = rng.integers(0, 256, (40 + 7 * i, 52 - 3 * i, 3), dtype=np.uint8)
        Image.fromarray(array).save(tmp_path / f"rgb{i}.png")
    Image.fromarray(rng.integers(0, 256, (60, 45), dtype=np.uint8)).save(tmp_path / "sub" / "grey.jpg")
    Image.fromarray(rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _batches(ds, n):
    return [b.numpy() for b in ds.take(n)]


def test_shapes_range_and_mixed_inputs(image_folder):
    ds = data.content_dataset(str(image_folder), image_size=32, batch_size=3, seed=0)
    assert ds.element_spec.shape.as_list() == [3, 32, 32, 3]     # static for XLA
    assert len(ds.files) == 6                                   # recursive, .txt ignored
    for batch in _batches(ds, 4):
        assert batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 1.0
    assert ds.decode_counter.skipped == 0
    flat = data.content_dataset(str(image_folder), image_size=32, batch_size=3, recursive=False)
    assert len(flat.files) == 5


def test_grayscale_becomes_three_equal_channels(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp_path / "g.png")
    (batch,) = _batches(data.content_dataset(str(tmp_path / "*.png"), image_size=40, batch_size=1), 1)
    np.testing.assert_array_equal(batch[..., 0], batch[..., 1])
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


def test_decode_resize_crop_against_numpy(tmp_path, rng):
    """A 40x60 image, short side already 40: the crop is an exact window of the /255 pixels."""
    array = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    expected = array.astype(np.float64) / 255.0
    (batch,) = _batches(data.content_dataset(str(tmp_path), image_size=40, batch_size=1,
                                             crop_mode="center"), 1)
    np.testing.assert_allclose(batch[0], expected[:, 10:50], atol=1e-6)
    for batch in _batches(data.content_dataset(str(tmp_path), image_size=40, batch_size=1,
                                               seed=3), 5):
        windows = [expected[:, left:left + 40] for left in range(21)]
        assert min(np.abs(batch[0] - w).max() for w in windows) < 1e-6


def test_short_side_resize_keeps_aspect(tmp_path):
    """A 20x80 vertical ramp upscaled so its short side is 40: the crop is a ramp across width."""
    ramp = np.tile(np.linspace(0, 255, 20).astype(np.uint8)[None, :, None], (80, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    (batch,) = _batches(data.content_dataset(str(tmp_path), image_size=40, batch_size=1), 1)
    row = batch[0, 0, :, 0]
    assert np.all(np.diff(row) >= -1e-6) and row[-1] - row[0] > 0.9   # full width kept
    np.testing.assert_allclose(batch[0, :, :, 0], np.tile(row, (40, 1)), atol=1e-5)


def test_same_seed_same_batches_other_seed_differs(image_folder):
    make = lambda seed: data.content_dataset(str(image_folder), image_size=32, batch_size=2,
                                             seed=seed)
    a, b, c = _batches(make(5), 6), _batches(make(5), 6), _batches(make(6), 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_start_batch_resumes_the_stream(image_folder):
    full = _batches(data.content_dataset(str(image_folder), image_size=32, batch_size=2, seed=1), 8)
    resumed = _batches(data.content_dataset(str(image_folder), image_size=32, batch_size=2, seed=1,
                                            start_batch=5), 3)
    for x, y in zip(full[5:], resumed):
        np.testing.assert_array_equal(x, y)


def test_one_pass_visits_every_file_once(tmp_path):
    for i in range(5):
        Image.fromarray(np.full((16, 16, 3), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = data.content_dataset(str(tmp_path), image_size=16, batch_size=1, repeat=False, seed=2)
    values = sorted(round(float(b[0, 0, 0, 0]) * 255) for b in _batches(ds, 10))
    assert values == [0, 10, 20, 30, 40]


def test_corrupt_files_are_skipped_and_counted(image_folder):
    (image_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    (image_folder / "empty.png").write_bytes(b"")
    ds = data.content_dataset(str(image_folder), image_size=32, batch_size=2, repeat=False)
    batches = _batches(ds, 100)
    assert len(batches) == 3                 # 6 good images, 2 bad ones dropped
    assert ds.decode_counter.attempted == 8
    assert ds.decode_counter.skipped == 2
    assert "skipped=2" in repr(ds.decode_counter)


def test_empty_sources_raise_up_front(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetError, match="holds no image files"):
        data.content_dataset(str(tmp_path / "empty"), image_size=32)
    with pytest.raises(data.DatasetError, match=r"no files match '.*nothing\*\.jpg'"):
        data.content_dataset(str(tmp_path / "nothing*.jpg"), image_size=32)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(data.DatasetError, match="none of the 1 content files could be decoded"):
        data.content_dataset(str(tmp_path / "bad"), image_size=32)
    assert issubclass(data.DatasetError, NSTError) and issubclass(data.DatasetError, ImageError)


def test_bad_options(image_folder):
    with pytest.raises(ImageError, match="resize_short_side=20 is smaller than image_size=32"):
        data.content_dataset(str(image_folder), image_size=32, resize_short_side=20)
    with pytest.raises(ImageError, match="crop_mode"):
        data.content_dataset(str(image_folder), image_size=32, crop_mode="middle")
    with pytest.raises(ImageError, match="batch_size"):
        data.content_dataset(str(image_folder), image_size=32, batch_size=0)


def _write_tfrecord(path, arrays, corrupt=0):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for array in arrays:
            encoded = _png_bytes(array)
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                       "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        for _ in range(corrupt):
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"junk"]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_tfrecord_imagenet_layout(tmp_path):
    values = list(range(0, 120, 20))
    arrays = [np.full((20 + v // 10, 24, 3), v, np.uint8) for v in values]
    _write_tfrecord(tmp_path / "train-00000-of-00002", arrays[:3], corrupt=1)
    _write_tfrecord(tmp_path / "train-00001-of-00002", arrays[3:])
    ds = data.content_dataset(str(tmp_path / "train-*"), image_size=16, batch_size=1, repeat=False)
    got = sorted(round(float(b[0, 0, 0, 0]) * 255) for b in _batches(ds, 100))
    assert got == values
    assert ds.decode_counter.skipped == 1
    # Explicit format for a name the detector does not know, and determinism by seed.
    os.rename(tmp_path / "train-00001-of-00002", tmp_path / "shard.bin")
    make = lambda: data.content_dataset(str(tmp_path / "shard.bin"), image_size=16, batch_size=2,
                                        format="tfrecord", seed=4)
    a, b = _batches(make(), 4), _batches(make(), 4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_with_style_labels_deterministic_and_mixed():
    ds = tf.data.Dataset.from_tensors(tf.zeros([64, 4, 4, 3])).repeat()
    a = [l.numpy() for _, l in data.with_style_labels(ds, 5, seed=1).take(3)]
    b = [l.numpy() for _, l in data.with_style_labels(ds, 5, seed=1, start_batch=1).take(2)]
    np.testing.assert_array_equal(a[1], b[0])
    np.testing.assert_array_equal(a[2], b[1])
    assert a[0].min() >= 0 and a[0].max() <= 4 and len(set(a[0])) > 1   # mixed within a batch
    assert not np.array_equal(a[0], a[1])
    with pytest.raises(data.DatasetError, match="num_styles"):
        data.with_style_labels(ds, 0)


def test_style_images_glob_and_style_size():
    folder = os.path.dirname(test_image("style/doesburg_sq.jpg"))
    loaded = data.style_images(os.path.join(folder, "*_sq.jpg"), style_size=48)
    assert len(loaded) == 2                                   # doesburg_sq, mauclair_sq
    for image in loaded:
        assert min(image.shape[:2]) == 48 and image.dtype == np.float32
    native = data.style_images([test_image("style/mauclair.jpg")])
    assert native[0].shape == np.asarray(Image.open(test_image("style/mauclair.jpg"))).shape
    with pytest.raises(ImageError, match="no style image files match"):
        data.style_images(os.path.join(folder, "*.nothing"))
    with pytest.raises(ImageError, match="not found"):
        data.style_images(["/no/such/style.jpg"])


def test_style_sources_take_folders_globs_and_lists_like_content(tmp_path):
    """A folder of style images works wherever a list of style images is accepted."""
    from nst_tf import images
    from nst_tf.objective import _style_list

    folder = tmp_path / "styles"
    folder.mkdir()
    for name, value in (("b.png", 0.8), ("a.png", 0.2)):
        images.save_image(str(folder / name), np.full((20, 24, 3), value, np.float32))
    (folder / "readme.txt").write_text("not an image")
    loaded = data.style_images(str(folder))
    assert [float(im.mean()) for im in loaded] == pytest.approx([0.2, 0.8], abs=0.01)
    listed = f"{folder / 'b.png'},{folder}"
    assert [os.path.basename(p) for p in _style_list([listed])] == ["b.png", "a.png", "b.png"]
    assert len(data.style_images(str(folder / "*.png"))) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match=f"folder {empty} holds no style image files"):
        data.style_images(str(empty))


def test_style_gram_targets_match_numpy(rng):
    from nst_tf.features import FeatureExtractor

    extractor = FeatureExtractor("vgg16", layers=["block1_conv2", "block2_conv2"], weights=None)
    styles = [rng.random((24, 32, 3), dtype=np.float32), rng.random((16, 16, 3), dtype=np.float32)]
    targets = data.style_gram_targets(extractor, styles)
    assert set(targets) == {"block1_conv2", "block2_conv2"}
    for i, style in enumerate(styles):
        features = extractor(style[None])
        for name, target in targets.items():
            f = np.asarray(features[name], np.float64)[0]
            f = f.reshape(-1, f.shape[-1])
            np.testing.assert_allclose(target[i].numpy(), f.T @ f / f.shape[0], rtol=1e-4, atol=1e-5)

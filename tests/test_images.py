"""nst_tf.images: bad files, every PIL mode we promise, atomic saving, colour helpers."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_tf import images
from nst_tf.errors import ImageError, NSTError
from nst_tf.io import OutputPathError


def write(path, img, **options):
    img.save(path, **options)
    return str(path)


def files_in(folder):
    return sorted(os.listdir(folder))


# --- Bad input -------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found: .*nope.png"):
        images.load_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty: .*empty.jpg"):
        images.load_image(tmp_path / "empty.jpg")


def test_folder(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        images.load_image(tmp_path)


def test_non_image_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageError, match="not an image file.*notes.png"):
        images.load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_file(tmp_path, rng, fmt, ext):
    pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    path = write(tmp_path / f"full.{ext}", Image.fromarray(pixels), format=fmt)
    data = open(path, "rb").read()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated.*cut"):
        images.load_image(cut)


def test_corrupt_body(tmp_path, rng):
    pixels = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    path = write(tmp_path / "x.png", Image.fromarray(pixels))
    data = bytearray(open(path, "rb").read())
    data[60:120] = bytes(60)  # zero part of the compressed data (header stays valid)
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="bad.png"):
        images.load_image(tmp_path / "bad.png")


def test_unreadable_file_message(tmp_path, monkeypatch):
    """A file we may not read (simulated: the tests may run as root, who reads anything)."""
    path = write(tmp_path / "locked.png", Image.new("RGB", (4, 4)))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(ImageError, match="cannot read image file .*locked.png: Permission denied"):
        images.load_image(path)


def test_errors_are_nst_errors():
    assert issubclass(ImageError, NSTError) and issubclass(OutputPathError, NSTError)


# --- Modes -----------------------------------------------------------------------------------

def test_rgb_exact(tmp_path, rng):
    pixels = (rng.random((5, 7, 3)) * 256).astype(np.uint8)
    path = write(tmp_path / "rgb.png", Image.fromarray(pixels))
    out = images.load_image(path)
    assert out.dtype == np.float32 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, (pixels.astype(np.float64) / 255.0).astype(np.float32))


def composite_on_white(rgb, alpha):
    a = alpha.astype(np.float64)[..., None] / 255.0
    return (rgb.astype(np.float64) * a + 255.0 * (1.0 - a)) / 255.0


def test_rgba_on_white(tmp_path, rng):
    rgb = (rng.random((6, 6, 3)) * 256).astype(np.uint8)
    alpha = np.array([0, 255, 128, 64, 200, 1], np.uint8)[None, :].repeat(6, 0)
    path = write(tmp_path / "rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
    out = images.load_image(path)
    assert out.shape == (6, 6, 3)
    np.testing.assert_allclose(out, composite_on_white(rgb, alpha), atol=1.01 / 255)
    np.testing.assert_array_equal(out[:, 0], 1.0)  # fully transparent → white
    np.testing.assert_allclose(out[:, 1], rgb[:, 1] / 255.0, atol=1e-7)  # opaque → unchanged


def test_la_on_white(tmp_path, rng):
    grey = (rng.random((4, 5)) * 256).astype(np.uint8)
    alpha = np.full((4, 5), 255, np.uint8)
    alpha[0] = 0
    alpha[1] = 100
    path = write(tmp_path / "la.png", Image.fromarray(np.dstack([grey, alpha]), "LA"))
    out = images.load_image(path)
    expected = composite_on_white(np.repeat(grey[..., None], 3, -1), alpha)
    np.testing.assert_allclose(out, expected, atol=1.01 / 255)
    np.testing.assert_array_equal(out[0], 1.0)


def test_grayscale_to_three_channels(tmp_path, rng):
    grey = (rng.random((9, 4)) * 256).astype(np.uint8)
    out = images.load_image(write(tmp_path / "l.png", Image.fromarray(grey, "L")))
    assert out.shape == (9, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey / np.float32(255))


@pytest.mark.parametrize("top", [65535, 200])  # 200: a dark 16-bit image must stay dark
def test_16bit_grayscale_scaled(tmp_path, rng, top):
    values = (rng.random((6, 8)) * top).astype(np.uint16)
    values[0, 0], values[0, 1] = 0, top
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = images.load_image(write(tmp_path / "g16.png", img))
    assert out.shape == (6, 8, 3)
    np.testing.assert_allclose(out[..., 1], values / 65535.0, rtol=1e-6, atol=1e-9)


def test_palette_without_transparency(tmp_path, rng):
    rgb = (rng.random((8, 8, 3)) * 4).astype(np.uint8) * 60  # few colours → exact palette
    img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = images.load_image(write(tmp_path / "p.png", img))
    np.testing.assert_array_equal(out, rgb / np.float32(255))


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (4, 3))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pixels = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], np.uint8)
    img.putdata(pixels.ravel().tolist())
    path = write(tmp_path / "pt.png", img, transparency=1)  # colour 1 (blue) is transparent
    out = images.load_image(path)
    expected = np.where(pixels[..., None] == 1, [1.0, 1.0, 1.0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out, expected.astype(np.float32))


@pytest.mark.parametrize("orientation, turn", [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation(tmp_path, orientation, turn):
    # Left half red, right half blue, 16x32 (H x W), stored with an orientation tag (PNG eXIf
    # chunk: lossless, so the comparison is exact).
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16, 0] = 255
    pixels[:, 16:, 2] = 255
    pixels[0, 0] = (0, 255, 0)  # a marker in the top-left corner of the stored image
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(tmp_path / "o.png", Image.fromarray(pixels), exif=exif.tobytes())
    out = images.load_image(path)
    # np.rot90 turns counter-clockwise; tag 6 means "rotate 90° clockwise to display".
    expected = np.rot90(pixels, turn).astype(np.float32) / 255
    np.testing.assert_array_equal(out, expected)


def test_exif_orientation_jpeg(tmp_path):
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = write(tmp_path / "o.jpg", Image.fromarray(pixels), quality=100, exif=exif.tobytes())
    out = images.load_image(path)
    assert out.shape == (32, 16, 3)
    assert out[:12].mean() > 0.95 and out[20:].mean() < 0.05  # white half now on top


def test_decompression_bomb_guard(tmp_path):
    path = write(tmp_path / "big.png", Image.new("RGB", (100, 50)))
    with pytest.raises(ImageError, match="100x50 = 5000 pixels, more than max_pixels=4999"):
        images.load_image(path, max_pixels=4999)
    assert images.load_image(path, max_pixels=5000).shape == (50, 100, 3)


def test_pil_warning_threshold_does_not_override_max_pixels(tmp_path, monkeypatch):
    """PIL warns above MAX_IMAGE_PIXELS; max_pixels, not that warning, decides."""
    path = write(tmp_path / "mid.png", Image.new("RGB", (40, 30)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warning at 1000, error at 2000
    assert images.load_image(path).shape == (30, 40, 3)


def test_one_pixel_loads_but_check_min_size_rejects(tmp_path):
    path = write(tmp_path / "dot.png", Image.new("RGB", (1, 1), (10, 20, 30)))
    out = images.load_image(path)
    np.testing.assert_array_equal(out, np.array([[[10, 20, 30]]], np.float32) / 255)
    with pytest.raises(ImageError, match="content image is 1x1 pixels; at least 16x16"):
        images.check_min_size(out, 16, what="content image")
    images.check_min_size(np.zeros((16, 17, 3)), 16)


def test_max_size_resizes(tmp_path):
    path = write(tmp_path / "wide.png", Image.new("RGB", (80, 40), (255, 128, 0)))
    out = images.load_image(path, max_size=20)
    assert out.shape == (10, 20, 3)
    np.testing.assert_allclose(out[5, 10], [1.0, 128 / 255, 0.0], atol=1e-5)


# --- Saving ----------------------------------------------------------------------------------

def test_png_round_trip_is_exact(tmp_path, rng):
    pixels = (rng.random((13, 11, 3)) * 256).astype(np.uint8)
    pixels[0, 0] = 0
    pixels[0, 1] = 255
    image = images.uint8_to_float(pixels)
    images.save_image(tmp_path / "rt.png", image)
    np.testing.assert_array_equal(images.load_image(tmp_path / "rt.png"), image)
    np.testing.assert_array_equal(images.float_to_uint8(image), pixels)
    assert files_in(tmp_path) == ["rt.png"]  # no temporary file left


def test_uint8_to_float_is_true_division():
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(images.uint8_to_float(values),
                                  (values.astype(np.float64) / 255.0).astype(np.float32))


def test_float_to_uint8_rounding():
    x = np.array([0.0, 0.5, 0.999, 1.2, -0.1, 127.5 / 255], np.float32)
    np.testing.assert_array_equal(images.float_to_uint8(x), [0, 128, 255, 255, 0, 128])
    np.testing.assert_array_equal(images.float_to_uint8(x, "truncate"), [0, 127, 254, 255, 0, 127])
    with pytest.raises(ValueError, match="rounding"):
        images.float_to_uint8(x, "floor")


def test_save_batch_of_one_and_jpeg(tmp_path):
    y, x = np.mgrid[0:32, 0:48] / 47.0
    smooth = np.stack([x, y, 0.5 * (x + y)], axis=-1).astype(np.float32)
    images.save_image(tmp_path / "a.jpg", smooth[None])
    out = images.load_image(tmp_path / "a.jpg")
    assert out.shape == smooth.shape
    assert np.abs(out - smooth).mean() < 0.01  # JPEG at quality 95 on a smooth image
    assert open(tmp_path / "a.jpg", "rb").read(3) == b"\xff\xd8\xff"  # really a JPEG


def test_save_missing_folder_writes_nothing(tmp_path, smooth_image):
    target = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(OutputPathError, match="does not exist"):
        images.save_image(target, smooth_image)
    assert files_in(tmp_path) == []


def test_failed_encoding_leaves_old_file_and_no_temp(tmp_path, smooth_image, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"previous contents")

    def broken_save(self, fp, format=None, **kwargs):
        fp.write(b"partial")
        raise OSError("encoder error (simulated)")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match="cannot encode .*out.png as PNG"):
        images.save_image(path, smooth_image)
    assert path.read_bytes() == b"previous contents"
    assert files_in(tmp_path) == ["out.png"]


def test_failed_write_removes_temp_file(tmp_path, smooth_image, monkeypatch):
    """A failure while writing (disk full) leaves neither the file nor a temp file."""
    def full_disk(fd):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        images.save_image(tmp_path / "out.png", smooth_image)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 4)), r"shape \(4, 4\)"),
    (np.zeros((2, 4, 4, 3)), r"shape \(2, 4, 4, 3\)"),
    (np.full((4, 4, 3), np.nan), "NaN or inf"),
    (np.zeros((4, 4, 3), np.int64), "int64"),
])
def test_save_rejects_bad_arrays(tmp_path, array, message):
    with pytest.raises(ImageError, match=message):
        images.save_image(tmp_path / "x.png", array)
    assert files_in(tmp_path) == []


def test_save_rejects_unknown_extension(tmp_path, smooth_image):
    with pytest.raises(ImageError, match="unknown image extension '.gif2'"):
        images.save_image(tmp_path / "x.gif2", smooth_image)


# --- Validation ------------------------------------------------------------------------------

def test_as_float_image_and_load_or_validate(tmp_path, rng):
    pixels = (rng.random((5, 6, 3)) * 256).astype(np.uint8)
    np.testing.assert_array_equal(images.as_float_image(pixels), images.uint8_to_float(pixels))
    with pytest.raises(ImageError, match=r"style image must have shape .*\(5, 6\)"):
        images.as_float_image(np.zeros((5, 6)), what="style image")
    with pytest.raises(ImageError, match="NaN or inf"):
        images.as_float_image(np.full((2, 2, 3), np.inf))
    path = write(tmp_path / "v.png", Image.fromarray(pixels))
    np.testing.assert_array_equal(images.load_or_validate(path), images.uint8_to_float(pixels))
    assert images.load_or_validate(np.zeros((40, 20, 3)), max_size=10).shape == (10, 5, 3)


# --- Colour ----------------------------------------------------------------------------------

def test_yiq_round_trip_and_tf_reference(rng):
    rgb = rng.random((7, 9, 3)).astype(np.float32)
    yiq = images.rgb_to_yiq(rgb)
    theirs = tf.image.rgb_to_yiq(rgb).numpy()
    np.testing.assert_allclose(yiq[..., :2], theirs[..., :2], atol=1e-6)
    # TF rounds Q's red coefficient to 0.2115; 0.21153661 makes greys chroma-free exactly.
    np.testing.assert_allclose(yiq[..., 2], theirs[..., 2], atol=4e-5)
    np.testing.assert_allclose(images.yiq_to_rgb(yiq), rgb, atol=1e-6)
    grey = np.full((2, 2, 3), 0.7)
    np.testing.assert_allclose(images.rgb_to_yiq(grey)[..., 1:], 0.0, atol=1e-7)
    np.testing.assert_allclose(images.rgb_to_yiq(grey)[..., 0], 0.7, rtol=1e-6)


def test_luminance(rng):
    rgb = rng.random((3, 4, 3))
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(images.luminance(rgb), expected, rtol=1e-6)
    np.testing.assert_allclose(images.luminance(np.ones((2, 2, 3))), 1.0, rtol=1e-6)


def test_transfer_luminance_keeps_content_chroma(rng):
    stylized, content = rng.random((6, 6, 3)) * 0.5 + 0.25, rng.random((6, 6, 3)) * 0.5 + 0.25
    out = images.transfer_luminance(stylized, content)
    np.testing.assert_allclose(images.luminance(out), images.luminance(stylized), atol=1e-5)
    np.testing.assert_allclose(images.rgb_to_yiq(out)[..., 1:], images.rgb_to_yiq(content)[..., 1:],
                               atol=1e-5)
    with pytest.raises(ImageError, match=r"same shape.*\(6, 6, 3\).*\(5, 6, 3\)"):
        images.transfer_luminance(stylized, content[:5])


@pytest.mark.parametrize("source_shape, reference_shape", [((10, 12), (10, 12)),
                                                           ((10, 12), (7, 5)),
                                                           ((4, 4), (30, 20))])
def test_match_histograms(rng, source_shape, reference_shape):
    source = rng.random(source_shape)
    reference = rng.random(reference_shape) ** 3
    out = images.match_histograms(source, reference)
    assert out.shape == source.shape
    # NumPy reference: the k-th smallest source value becomes the reference quantile (k+½)/n.
    n, m = source.size, reference.size
    ref_q = np.interp((np.arange(n) + 0.5) / n, (np.arange(m) + 0.5) / m, np.sort(reference.ravel()))
    np.testing.assert_array_equal(np.sort(out.ravel()), ref_q.astype(np.float32))
    # ... and the order of the pixels is kept.
    order = np.argsort(source.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= 0)
    if source_shape == reference_shape:
        np.testing.assert_array_equal(np.sort(out.ravel()),
                                      np.sort(reference.ravel()).astype(np.float32))


def test_grey_to_rgb_has_one_contract_for_arrays_and_tensors():
    """``[..., H, W, 1]`` → ``[..., H, W, 3]``, for NumPy arrays and TF tensors alike (the
    gatys luminance-only path and the tiles use the same function); anything else is refused."""
    import tensorflow as tf

    luma = (np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1) / 6)
    out = images.grey_to_rgb(luma)
    assert isinstance(out, np.ndarray) and out.shape == (1, 2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], luma[..., 0])
    assert images.grey_to_rgb(luma[0]).shape == (2, 3, 3)
    tensor = images.grey_to_rgb(tf.constant(luma))
    assert isinstance(tensor, tf.Tensor)
    np.testing.assert_array_equal(tensor.numpy(), out)
    traced = tf.function(images.grey_to_rgb)(tf.constant(luma))
    np.testing.assert_array_equal(traced.numpy(), out)
    for bad in (luma[0, ..., 0], np.zeros((2, 3, 3), np.float32)):
        with pytest.raises(ImageError, match=r"\[\.\.\., H, W, 1\]"):
            images.grey_to_rgb(bad)

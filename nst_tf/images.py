"""Image files in and out, resizing, and colour-space helpers.

Images are float32 arrays in [0, 1], shape ``[H, W, 3]`` (one image) or ``[B, H, W, 3]`` (a batch).
uint8 appears only at file boundaries, and uint8 → float is a true division by 255, which is what
Magenta's ``load_np_image`` computes (multiplying by ``1/255`` differs in the last bit for 126 of
the 256 values).

Example:
    >>> import numpy as np, os, tempfile
    >>> from nst_tf import images
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> images.save_image(path, np.full((8, 8, 3), 0.5, np.float32))
    >>> images.load_image(path).shape
    (8, 8, 3)
"""

import glob
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_tf.errors import ImageError
from nst_tf.io import atomic_write, check_output_dir

#: File name endings treated as images when a folder is listed.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Largest image, in pixels, that :func:`load_image` decodes (a decompression-bomb guard).
DEFAULT_MAX_PIXELS = 178_956_970

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF", ".webp": "WEBP"}


def uint8_to_float(array):
    """uint8 → float32 in [0, 1] by true division, bit-identical to Magenta's loader."""
    return np.asarray(array, np.uint8).astype(np.float32) / np.float32(255.0)


def float_to_uint8(image, rounding="round"):
    """float in [0, 1] → uint8. ``rounding="truncate"`` reproduces Magenta's ``uint8(x * 255)``."""
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0) * np.float32(255.0)
    if rounding == "round":
        image = np.round(image)
    elif rounding != "truncate":
        raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}")
    return image.astype(np.uint8)


def _pil_to_float(img, path):
    """Convert any PIL mode to float32 RGB in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: PIL keeps the full range in mode "I".
        data = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        grey = np.clip(data / top, 0.0, 1.0).astype(np.float32)
        return grey_to_rgb(grey[..., None])
    if mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        if grey.size and (np.nanmin(grey) < 0.0 or np.nanmax(grey) > 1.0):
            grey = grey / max(float(np.nanmax(grey)), 1.0)
        return grey_to_rgb(np.clip(grey, 0.0, 1.0)[..., None])
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite onto white: transparent areas become white, not black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if mode == "L":
        grey = uint8_to_float(np.asarray(img))
        return grey_to_rgb(grey[..., None])
    return uint8_to_float(np.asarray(img.convert("RGB")))


def load_image(path, max_size=None, max_pixels=DEFAULT_MAX_PIXELS):
    """Load an image file as float32 RGB ``[H, W, 3]`` in [0, 1].

    Handles EXIF orientation, grayscale (tiled to 3 channels, as Magenta does), RGBA/LA/transparent
    palettes (composited on white), palette images, and 16-bit images (scaled by 1/65535).

    Args:
        path: file path.
        max_size: if given, downscale so the longer side is at most this many pixels.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).

    Raises:
        ImageError: the file is missing, empty, not an image, corrupt, or too large.

    Example:
        >>> from nst_tf.images import load_image
        >>> load_image("examples/images/Camille_Mauclair.jpg", max_size=64).shape
        (64, 56, 3)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"image file not found: {path}")
    if os.path.isdir(path):
        raise ImageError(f"expected an image file but {path} is a folder")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # permissions, I/O errors
        raise ImageError(f"cannot read image file {path}: {e.strerror or e}") from None
    image = decode_image(data, path, max_pixels)
    if max_size is not None:
        image = resize_max_side(image, max_size)
    return image


def decode_image(data, name="image", max_pixels=DEFAULT_MAX_PIXELS):
    """Decode an encoded image (bytes of any format PIL reads) as :func:`load_image` does:
    float32 RGB ``[H, W, 3]`` in [0, 1]. ``name`` (the file it came from) is used in messages.

    Raises:
        ImageError: empty data, not an image, corrupt or truncated, or too large.

    Example:
        >>> buffer = io.BytesIO()
        >>> Image.new("L", (5, 4), 128).save(buffer, format="PNG")
        >>> decode_image(buffer.getvalue()).shape
        (4, 5, 3)
    """
    if not data:
        raise ImageError(f"image file is empty: {name}")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below is the guard; PIL's warning (at half its hard
            # limit) would otherwise refuse images that max_pixels allows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise ImageError(f"image {name} is {img.width}x{img.height} = "
                                 f"{img.width * img.height} pixels, more than max_pixels={max_pixels}")
            img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not an image file (unknown format): {name}") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"image {name} is too large to decode safely: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image file {name}: {e}") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make a good image unreadable
        pass
    return _pil_to_float(img, name)


#: EXIF orientations that turn the picture a quarter (width and height swap).
_QUARTER_TURNS = (5, 6, 7, 8)


def image_size(path):
    """``(height, width)`` of the image :func:`load_image` would return for ``path`` (EXIF
    orientation applied), read from the header without decoding the pixels.

    Raises:
        ImageError: the file is missing or not an image.

    Example:
        >>> image_size("examples/images/Camille_Mauclair.jpg")
        (600, 525)
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            try:
                turned = img.getexif().get(0x0112) in _QUARTER_TURNS
            except Exception:  # a broken EXIF block: load_image ignores it too
                turned = False
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image file (unknown format): {path}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image file {path}: {e}") from None
    return (width, height) if turned else (height, width)


def save_image(path, image, quality=95):
    """Save a float image in [0, 1] (``[H,W,3]`` or ``[1,H,W,3]``) atomically.

    The format comes from the extension (``.png``, ``.jpg``...). The file appears complete or not
    at all: it is written to a temporary file in the same folder and renamed.

    Raises:
        ImageError: the array has the wrong shape or dtype, NaN / inf values, an unknown
            extension, or cannot be encoded.
        OutputPathError: the folder does not exist.
    """
    path = os.fspath(path)
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ImageError(f"cannot save an array of shape {np.shape(image)} as an image to {path}; "
                         "expected [H, W, 3] or [1, H, W, 3]")
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ImageError(f"unknown image extension {ext!r} for {path}; use one of {sorted(_FORMATS)}")
    check_output_dir(path)
    if array.dtype != np.uint8:
        if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
            raise ImageError(f"cannot save a {array.dtype} array to {path}: give floats in "
                             "[0, 1] or uint8")
        if not np.all(np.isfinite(array)):
            raise ImageError(f"refusing to save {path}: the image contains NaN or inf")
        array = float_to_uint8(array)
    if array.shape[-1] == 1:
        array = array[..., 0]
    encoded = io.BytesIO()
    options = {"quality": quality} if _FORMATS[ext] in ("JPEG", "WEBP") else {}
    try:  # encode in memory first: a failure leaves no file behind
        Image.fromarray(array).save(encoded, format=_FORMATS[ext], **options)
    except (OSError, KeyError, ValueError) as e:
        raise ImageError(f"cannot encode {path} as {_FORMATS[ext]}: {e}") from None
    with atomic_write(path) as f:
        f.write(encoded.getvalue())


def resize(image, size, method="bicubic"):
    """Resize ``[H,W,3]`` or ``[B,H,W,3]`` float images to ``size=(height, width)``, antialiased."""
    import tensorflow as tf

    out = tf.image.resize(image, size, method=method, antialias=True)
    return np.clip(out.numpy(), 0.0, 1.0).astype(np.float32)


def resize_max_side(image, max_size, method="bicubic"):
    """Downscale so that the longer side is at most ``max_size``; smaller images are unchanged."""
    height, width = np.shape(image)[-3:-1]
    longest = max(height, width)
    if max_size is None or longest <= max_size:
        return np.asarray(image, np.float32)
    scale = max_size / longest
    new = (max(1, round(height * scale)), max(1, round(width * scale)))
    return resize(image, new, method=method)


def check_min_size(image, min_size, what="image"):
    """Raise :class:`ImageError` if either side of ``image`` is below ``min_size`` pixels."""
    height, width = np.shape(image)[-3:-1]
    if height < min_size or width < min_size:
        raise ImageError(f"{what} is {width}x{height} pixels; at least {min_size}x{min_size} is needed")


def as_float_image(image, what="image"):
    """Validate an array image: float32 ``[H,W,3]`` or ``[B,H,W,3]``; uint8 is converted."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = uint8_to_float(array)
    array = array.astype(np.float32, copy=False)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ImageError(f"{what} must have shape [H, W, 3] or [B, H, W, 3], got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ImageError(f"{what} contains NaN or inf values")
    return array


def load_or_validate(image, max_size=None, what="image"):
    """A path is loaded with :func:`load_image`; an array is validated with :func:`as_float_image`."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_size=max_size)
    array = as_float_image(image, what=what)
    if max_size is not None:
        array = resize_max_side(array, max_size)
    return array


def split_sources(sources):
    """A path, a comma-separated string or a list of them → a list of stripped, ``~``-expanded
    strings (the command line passes one comma-separated flag)."""
    if isinstance(sources, (str, os.PathLike)):
        sources = os.fspath(sources).split(",")
    return [os.path.expanduser(os.fspath(s).strip()) for s in sources if os.fspath(s).strip()]


def image_files(sources, what="style image", recursive=False):
    """Expand image sources into a list of files: each source is a file, a folder (its image
    files, sorted by name) or a glob pattern (sorted); a comma-separated string or a list of
    them keeps the order given. Files are not opened here.

    Raises:
        ImageError: a source that matches nothing, a folder without image files, or no source.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> for name in ("b.png", "a.jpg", "notes.txt"):
        ...     open(os.path.join(folder, name), "w").close()
        >>> [os.path.basename(f) for f in image_files(folder)]
        ['a.jpg', 'b.png']
    """
    files = []
    for source in split_sources(sources):
        if os.path.isdir(source):
            pattern = os.path.join(source, "**", "*") if recursive else os.path.join(source, "*")
            found = sorted(f for f in glob.glob(pattern, recursive=recursive)
                           if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise ImageError(f"folder {source} holds no {what} files "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")
        elif glob.has_magic(source):
            found = sorted(f for f in glob.glob(source, recursive=recursive) if os.path.isfile(f))
            if not found:
                raise ImageError(f"no {what} files match {source!r}")
        elif os.path.isfile(source):
            found = [source]
        else:
            raise ImageError(f"{what} not found: {source} (no such file, folder or pattern)")
        files.extend(found)
    if not files:
        raise ImageError(f"no {what} given")
    return files


def image_batch(image, what="image"):
    """A path, ``[H, W, 3]`` image or ``[B, H, W, 3]`` batch as a validated, contiguous float32
    ``[B, H, W, 3]`` batch in [0, 1], plus whether the input was a single image.

    Example:
        >>> batch, single = image_batch(np.zeros((4, 5, 3), np.uint8))
        >>> batch.shape, single
        ((1, 4, 5, 3), True)
    """
    array = load_or_validate(image, what=what)
    single = array.ndim == 3
    batch = array[None] if single else array
    if batch.shape[0] == 0:
        raise ImageError(f"{what} batch is empty (shape {batch.shape})")
    low, high = float(batch.min()), float(batch.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ImageError(f"{what} values span [{low:g}, {high:g}]; expected floats in [0, 1] "
                         "(divide 0..255 data by 255, or pass a uint8 array)")
    return np.ascontiguousarray(batch, np.float32), single


# --- Colour -------------------------------------------------------------------------------------

# NTSC YIQ: tf.image.rgb_to_yiq's matrix, except that Q's red coefficient has 8 digits
# (0.21153661, TF rounds it to 0.2115) so that greys have exactly zero chroma.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.59590059, -0.27455667, -0.32134392],
                        [0.21153661, -0.52273617, 0.31119955]], np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image):
    """RGB → YIQ (Y is luminance in [0, 1]); works on ``[..., 3]`` arrays."""
    return (np.asarray(image, np.float64) @ _RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(image):
    """YIQ → RGB, the exact inverse of :func:`rgb_to_yiq` (not clipped)."""
    return (np.asarray(image, np.float64) @ _YIQ_TO_RGB.T).astype(np.float32)


def luminance(image):
    """The Y channel of :func:`rgb_to_yiq`, shape ``[..., H, W]``."""
    return rgb_to_yiq(image)[..., 0]


def match_histograms(source, reference):
    """Remap the values of ``source`` so their histogram matches ``reference`` (any shapes).

    Exact quantile matching: the k-th smallest source value becomes the reference value at the
    same quantile (linear interpolation between reference samples).
    """
    source = np.asarray(source, np.float64)
    reference = np.asarray(reference, np.float64).ravel()
    order = np.argsort(source, axis=None, kind="stable")
    quantiles = (np.arange(source.size) + 0.5) / source.size
    ref_sorted = np.sort(reference)
    ref_quantiles = (np.arange(reference.size) + 0.5) / reference.size
    matched = np.empty(source.size, np.float64)
    matched[order] = np.interp(quantiles, ref_quantiles, ref_sorted)
    return matched.reshape(source.shape).astype(np.float32)


def transfer_luminance(stylized, content):
    """Keep the luminance of ``stylized`` and the chroma (I, Q) of ``content`` (same size)."""
    if np.shape(stylized) != np.shape(content):
        raise ImageError(f"transfer_luminance needs images of the same shape, got "
                         f"{np.shape(stylized)} and {np.shape(content)}")
    out = rgb_to_yiq(content)
    out[..., 0] = luminance(stylized)
    return np.clip(yiq_to_rgb(out), 0.0, 1.0)


def grey_to_rgb(grey):
    """A one-channel image ``[..., H, W, 1]`` → grey RGB ``[..., H, W, 3]`` (the channel
    repeated). NumPy arrays give NumPy arrays; TensorFlow tensors give tensors (inside compiled
    functions too).

    Example:
        >>> grey_to_rgb(np.full((2, 3, 1), 0.5, np.float32))[0, 0]
        array([0.5, 0.5, 0.5], dtype=float32)
    """
    tensor = type(grey).__module__.startswith(("tensorflow", "keras"))
    shape = tuple(grey.shape) if tensor else np.shape(grey)
    if len(shape) < 3 or shape[-1] not in (1, None):
        raise ImageError(f"grey_to_rgb takes [..., H, W, 1] images, got shape {shape}")
    if tensor:
        import tensorflow as tf

        return tf.repeat(grey, 3, axis=-1)
    return np.repeat(np.asarray(grey, np.float32), 3, axis=-1)


def coral(source, target):
    """Give ``source`` [H, W, 3] the colour mean and covariance of ``target`` [h, w, 3] (CORAL,
    Sun et al. 2016), as AdaIN's colour preservation does (pytorch-AdaIN ``coral``).

    Per image, channels are standardized (mean, unbiased std); ``S = ẑ_s ẑ_sᵀ + I`` and
    ``T = ẑ_t ẑ_tᵀ + I`` (sums over pixels); the result is ``T^½ S^-½ ẑ_s · std_t + mean_t``
    (matrix square roots by SVD), computed in float64, returned float32 and not clipped.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> out = coral(rng.random((8, 8, 3)), rng.random((6, 9, 3)) * 0.5)
        >>> out.shape, bool(abs(out.mean() - 0.25) < 0.1)
        ((8, 8, 3), True)
    """
    def standardized(image):
        flat = np.asarray(image, np.float64).reshape(-1, 3).T          # [3, N]
        mean = flat.mean(axis=1, keepdims=True)
        std = flat.std(axis=1, ddof=1, keepdims=True)
        return (flat - mean) / np.maximum(std, 1e-12), mean, std

    def sqrtm(matrix):
        u, d, vt = np.linalg.svd(matrix)
        return u @ np.diag(np.sqrt(d)) @ vt

    source_z, _, _ = standardized(source)
    target_z, target_mean, target_std = standardized(target)
    source_cov = source_z @ source_z.T + np.eye(3)
    target_cov = target_z @ target_z.T + np.eye(3)
    moved = sqrtm(target_cov) @ np.linalg.inv(sqrtm(source_cov)) @ source_z
    out = moved * target_std + target_mean
    return out.T.reshape(np.shape(source)).astype(np.float32)

"""What goes into Magenta's arbitrary-style network: style images and their preprocessing.

* Preprocessing is Magenta's (``arbitrary_image_stylization_with_weights``): the style image is
  resized (bilinear, TF1 ``resize_bilinear`` arithmetic, no crop) so that its shorter side is
  ``style_size`` = 256 (:func:`preprocess_style`, :func:`resize_bilinear_tf1`,
  :func:`shorter_side_size`).
* Style inputs: :func:`style_sources` turns a path, a folder, an array or a list into a list of
  images; :func:`check_style_weights` and :func:`check_strength` check the mixing options.

Example:
    >>> import numpy as np
    >>> preprocess_style(np.zeros((300, 400, 3), np.float32)).shape
    (256, 341, 3)
"""

import hashlib
import numbers
import os
import warnings

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError, ImageError, StyleWeightsError

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# --- Preprocessing -----------------------------------------------------------------------------

def shorter_side_size(height, width, side):
    """Magenta's ``_smallest_size_at_least``: ``(new_h, new_w)`` with the shorter side ``side``,
    computed in float32 and truncated, as ``image_utils`` does."""
    h, w, s = np.float32(height), np.float32(width), np.float32(side)
    scale = s / w if h > w else s / h
    return int(np.float32(h * scale)), int(np.float32(w * scale))


def resize_bilinear_tf1(image, size):
    """``tf.compat.v1.image.resize_bilinear`` (``align_corners=False``, no half-pixel centres):
    Magenta's resize. ``image`` ``[H, W, C]`` or ``[B, H, W, C]`` float32; ``size`` (h, w)."""
    import tensorflow as tf

    array = np.asarray(image, np.float32)
    if tuple(array.shape[-3:-1]) == tuple(size):
        return array
    batch = array if array.ndim == 4 else array[None]
    out = tf.raw_ops.ResizeBilinear(images=batch, size=list(size), align_corners=False,
                                    half_pixel_centers=False).numpy()
    return out if array.ndim == 4 else out[0]


def preprocess_style(image, style_size=256, what="style image", square=False):
    """A style image ``[h, w, 3]`` resized as Magenta does (shorter side ``style_size``, bilinear,
    no crop); ``style_size=None`` keeps its size. ``square=True`` then cuts the centre
    ``style_size x style_size`` square out (:func:`center_square`): the input of the published
    mobile model, as TF Lite's style transfer example prepares it. A result smaller than the
    trunk accepts (:data:`~nst_tf.networks.MIN_STYLE_SIZE`, 43 px) is resized up with a warning.

    Example:
        >>> preprocess_style(np.zeros((300, 400, 3), np.float32)).shape
        (256, 341, 3)
        >>> preprocess_style(np.zeros((300, 400, 3), np.float32), square=True).shape
        (256, 256, 3)
    """
    from nst_tf.models.arbitrary.network import MIN_STYLE_SIZE

    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    if style_size is not None:
        image = resize_bilinear_tf1(image, shorter_side_size(height, width, style_size))
        if square:
            image = center_square(image, style_size)
    if min(image.shape[:2]) < MIN_STYLE_SIZE:
        size = shorter_side_size(*image.shape[:2], MIN_STYLE_SIZE)
        size = (max(size[0], MIN_STYLE_SIZE), max(size[1], MIN_STYLE_SIZE))
        warnings.warn(f"{what} is {image.shape[1]}x{image.shape[0]} pixels (W x H) after "
                      f"preprocessing; the style network needs at least {MIN_STYLE_SIZE} px per "
                      f"side, so it is resized up to {size[1]}x{size[0]}", stacklevel=3)
        image = resize_bilinear_tf1(image, size)
    return image


def center_square(image, side):
    """The centre ``side x side`` square of ``image`` ``[h, w, C]`` (both sides >= ``side``),
    offsets rounded down as ``tf.image.resize_with_crop_or_pad`` rounds them."""
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top:top + side, left:left + side]


def check_style_size(style_size, name="style_size"):
    if style_size is None:
        return None
    if isinstance(style_size, bool) or not isinstance(style_size, numbers.Integral) \
            or style_size < 1:
        raise ConfigError(f"{name} must be a positive int (or None), got {style_size!r}")
    return int(style_size)


# --- Style inputs ------------------------------------------------------------------------------

def _folder_images(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_EXTENSIONS))
    if not names:
        raise ImageError(f"style folder {folder} holds no image files "
                         f"({', '.join(_IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]


def style_sources(style):
    """The style images of ``style`` as a list of paths and ``[h, w, 3]`` arrays.

    ``style`` is a path, a folder (its image files, sorted by name), an ``[h, w, 3]`` array, a
    ``[K, h, w, 3]`` array, or a list / tuple of paths and arrays.
    """
    if style is None:
        raise StyleWeightsError("an arbitrary-style model needs a style: an image path or "
                                "array, a folder or a list of images")
    if isinstance(style, (str, os.PathLike)):
        path = os.fspath(style)
        return _folder_images(path) if os.path.isdir(path) else [path]
    if isinstance(style, (list, tuple)):
        if not style:
            raise StyleWeightsError("the list of style images is empty")
        sources = []
        for item in style:
            if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
                sources += _folder_images(os.fspath(item))
            elif isinstance(item, (str, os.PathLike)):
                sources.append(os.fspath(item))
            else:
                sources.append(style_array(item))
        return sources
    array = style_array(style, allow_batch=True)
    return list(array) if array.ndim == 4 else [array]


def style_array(item, allow_batch=False):
    try:
        array = np.asarray(item)
    except Exception:  # noqa: BLE001  ragged lists and the like
        array = None
    if array is None or array.dtype == object or \
            array.ndim not in ((3, 4) if allow_batch else (3,)) or array.shape[-1] != 3:
        raise ImageError(f"a style image must be a path or an [h, w, 3] array"
                         f"{' (or a [K, h, w, 3] batch)' if allow_batch else ''}; got "
                         f"{type(item).__name__} of shape {getattr(array, 'shape', '?')}")
    return array


def load_style(source, index):
    what = f"style image {source}" if isinstance(source, str) else f"style image #{index}"
    batch, _ = images.image_batch(source, what=what)
    return batch[0], what


def image_key(source, index):
    """``(cache key, loaded image or None, description)``: a readable file is keyed by its path,
    size and mtime without decoding it; an array (or an unreadable path, which then raises a
    readable ImageError) is loaded and keyed by its contents."""
    if isinstance(source, str) and os.path.isfile(source):
        stat = os.stat(source)
        key = ("file", os.path.realpath(source), stat.st_mtime_ns, stat.st_size)
        return key, None, f"style image {source}"
    image, what = load_style(source, index)
    digest = hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()
    return ("array", image.shape, digest), image, what


def check_style_weights(style_weights, count):
    """``style_weights`` as float32 weights summing to 1, after checking them.

    Raises:
        StyleWeightsError: not ``count`` numbers, NaN / inf, a negative weight, or all zero.
    """
    try:
        array = np.asarray(style_weights, np.float64)
    except (TypeError, ValueError):
        raise StyleWeightsError(f"style_weights must be a list of {count} numbers, got "
                                f"{style_weights!r}") from None
    if array.ndim != 1 or array.size != count:
        raise StyleWeightsError(f"got {array.size} style weight(s) {np.ravel(array).tolist()} for "
                                f"{count} style image(s); give one weight per style image")
    if not np.all(np.isfinite(array)):
        raise StyleWeightsError(f"style weights must be finite, got {array.tolist()}")
    if np.any(array < 0):
        raise StyleWeightsError(f"style weights must not be negative, got {array.tolist()}")
    if array.sum() <= 0:
        raise StyleWeightsError(f"style weights sum to 0 ({array.tolist()}); at least one must be "
                                "positive")
    return (array / array.sum()).astype(np.float32)


def check_strength(strength):
    """``strength`` as a float in [0, 1]; a ConfigError otherwise."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ConfigError(f"strength must be a number in [0, 1] (1 = full style, 0 = about "
                          f"the content image), got {strength!r}")
    return float(strength)

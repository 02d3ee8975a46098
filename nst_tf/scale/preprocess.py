"""Content and style preprocessing of dataset runs, in PIL as the published pipelines do it.

Stylized-ImageNet (Geirhos et al.) and stylize-datasets prepare images with torchvision on PIL
images; these functions repeat that arithmetic (no torchvision needed):

* :func:`resize_shorter_side` — ``transforms.Resize(size)``: the shorter side becomes ``size``,
  the longer one ``int(size · long / short)``, PIL bilinear (antialiased when shrinking);
* :func:`center_crop` — ``transforms.CenterCrop(size)``: offsets ``int(round((H − size) / 2))``;
* :func:`square_thumbnail` — Stylized-ImageNet's ``crop_square_and_downsample``: the largest
  centred square (offsets truncated), then ``thumbnail((size, size), LANCZOS)``.

Images come in and go out as uint8 ``[H, W, 3]`` arrays; decode files with
:func:`nst_tf.images.decode_image` (greyscale, CMYK, 16-bit and alpha become RGB) and convert
with :func:`nst_tf.images.float_to_uint8`, which is exact for 8-bit sources.

Example:
    >>> import numpy as np
    >>> photo = np.zeros((375, 500, 3), np.uint8)
    >>> prepare_content(photo, content_size=256, crop_size=224).shape
    (224, 224, 3)
    >>> resize_shorter_side(photo, 256).shape
    (256, 341, 3)
"""

import numpy as np
from PIL import Image

from nst_tf.errors import ImageError


def _pil(array):
    return Image.fromarray(np.ascontiguousarray(array, np.uint8), "RGB")


def resize_shorter_side(image, size):
    """uint8 ``[H, W, 3]`` with the shorter side resized to ``size`` (torchvision ``Resize``)."""
    height, width = image.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    if short == size:
        return image
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    return np.asarray(_pil(image).resize((new_w, new_h), Image.BILINEAR))


def center_crop(image, size, what="image"):
    """The centred ``size × size`` part of uint8 ``[H, W, 3]`` (torchvision ``CenterCrop``)."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ImageError(f"{what} is {width}x{height} pixels, smaller than the {size}x{size} crop")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image[top:top + size, left:left + size]


def square_thumbnail(image, size):
    """The largest centred square of uint8 ``[H, W, 3]``, shrunk to at most ``size × size``
    with PIL's ``thumbnail`` (LANCZOS), as Stylized-ImageNet prepares its paintings."""
    height, width = image.shape[:2]
    side = min(width, height)
    left, top = int((width - side) / 2), int((height - side) / 2)
    square = _pil(image).crop((left, top, left + side, top + side))
    square.thumbnail((size, size), Image.LANCZOS)
    return np.asarray(square)


def prepare_content(image, content_size=None, crop_size=None, what="content image"):
    """A content image (uint8) resized (shorter side ``content_size``) and centre-cropped
    (``crop_size``), each step skipped when its size is None."""
    if content_size:
        image = resize_shorter_side(image, int(content_size))
    if crop_size:
        image = center_crop(image, int(crop_size), what=what)
    return np.ascontiguousarray(image)

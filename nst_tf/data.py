"""Training input: content images through ``tf.data``, style images and their Gram targets.

:func:`content_dataset` turns image files (glob patterns, folders) or ImageNet-layout TFRecords
into an endless stream of ``[batch, size, size, 3]`` float32 batches in [0, 1]::

    list files ─▶ per epoch: stateless shuffle (seed, epoch) ─▶ skip(start) ─▶ read + decode
        ─▶ resize short side ─▶ crop ─▶ drop unreadable ─▶ batch (static shape) ─▶ prefetch

* Decoding uses ``tf.io.decode_image(channels=3, expand_animations=False)``: grayscale becomes RGB,
  an alpha channel is dropped, a GIF gives its first frame. uint8 → float is a division by 255.
* Resizing: the short side is scaled to ``resize_short_side`` (default ``image_size``, so the crop
  keeps the whole short side; Magenta used ``image_size + 2`` and a central crop, which is
  ``resize_short_side=image_size + 2, crop_mode="center"``), bilinear with antialiasing.
* Determinism: the file order of each epoch comes from ``(seed, epoch)`` and each crop from
  ``(seed, element index)`` with stateless random ops, so the same seed gives the same batches
  regardless of parallelism or of how many iterators were made, and ``start_batch=k`` continues
  exactly where batch ``k`` of an uninterrupted run starts (when no file is corrupt; each
  skipped corrupt file shifts later batches by one image).
* A corrupt or unreadable file is dropped and counted, never a crash mid-epoch: read the count
  from ``dataset.decode_counter.skipped`` (see :class:`DecodeCounter`). A source with no images,
  or whose files are all unreadable, is a :class:`DatasetError` before training starts.
* Several workers: ``batch_slice=BatchSlice(start, stop, batch_size)`` keeps the slots
  ``[start, stop)`` of every global batch and decodes nothing else. The element index is taken
  before that choice, so each slot holds the image, crop and label one process would put there:
  the workers' slices of step ``k`` together are exactly one process's batch ``k``.

Example:
    >>> from nst_tf.data import content_dataset
    >>> ds = content_dataset("examples/images", image_size=64, batch_size=2)
    >>> next(iter(ds)).shape
    TensorShape([2, 64, 64, 3])
"""

import glob
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from nst_tf.errors import ImageError
from nst_tf.images import IMAGE_EXTENSIONS, image_files, split_sources

#: Feature holding the encoded image in ImageNet (slim / inception) TFRecords.
TFRECORD_IMAGE_KEY = "image/encoded"


class DatasetError(ImageError):
    """A content source with no usable images (nothing matched, empty folder, all unreadable)."""


class DecodeCounter:
    """Counts images read and images dropped because they could not be decoded.

    The counts are ``tf.Variable`` s updated by the input pipeline itself. They count what the
    reader has processed, which runs ahead of training by the prefetch buffers: after a finite
    pass they are exact; during training, a corrupt file read ahead is already counted.

    Example:
        >>> c = DecodeCounter()
        >>> c.attempted, c.skipped
        (0, 0)
    """

    def __init__(self):
        self._attempted = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_attempted")
        self._decoded = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_decoded")

    @property
    def attempted(self):
        """Images the pipeline tried to read."""
        return int(self._attempted.numpy())

    @property
    def decoded(self):
        """Images read and decoded successfully."""
        return int(self._decoded.numpy())

    @property
    def skipped(self):
        """Images dropped because reading or decoding failed."""
        return max(0, self.attempted - self.decoded)

    def __repr__(self):
        return f"DecodeCounter(attempted={self.attempted}, skipped={self.skipped})"


class BatchSlice(NamedTuple):
    """The slots ``[start, stop)`` of every global batch of ``size`` examples: what one input
    pipeline (one worker) reads under a multi-worker strategy.

    Example:
        >>> BatchSlice.of_pipeline(8, index=1, count=2)
        BatchSlice(start=4, stop=8, size=8)
        >>> BatchSlice.whole(8).width
        8
    """

    start: int
    stop: int
    size: int

    @classmethod
    def whole(cls, size):
        """Every slot of a batch of ``size``."""
        return cls(0, int(size), int(size))

    @classmethod
    def of_pipeline(cls, size, index, count):
        """Pipeline ``index`` of ``count`` (a worker) takes the ``index``-th of ``count`` equal,
        contiguous parts; ``size`` must be a multiple of ``count``."""
        size, index, count = int(size), int(index), int(count)
        if count < 1 or size % count or not 0 <= index < count:
            raise DatasetError(f"a global batch of {size} cannot be split into {count} equal "
                               f"parts (part {index})")
        width = size // count
        return cls(index * width, (index + 1) * width, size)

    @property
    def width(self):
        """Examples per batch in the slice."""
        return self.stop - self.start

    def check(self, size):
        """This slice, if it is a valid slice of batches of ``size``; else a DatasetError."""
        if self.size != int(size) or not 0 <= self.start < self.stop <= self.size:
            raise DatasetError(f"batch slice {tuple(self)} does not fit batches of {size}")
        return self

    def holds(self, index):
        """Whether example ``index`` (a global element index, a tensor) falls in the slice."""
        slot = index % self.size
        return tf.logical_and(slot >= self.start, slot < self.stop)


# --- Listing sources ------------------------------------------------------------------------------

def _is_tfrecord_name(path):
    name = os.path.basename(path)
    return name.endswith((".tfrecord", ".tfrecords")) or name.startswith("train-") \
        or ".tfrecord-" in name


def list_files(sources, recursive=True, format="auto"):
    """Expand glob patterns and folders into a sorted list of files and their format.

    Args:
        sources: a path, glob pattern or folder, or a list of them (a comma-separated string is
            also accepted, as on the command line).
        recursive: list folders recursively.
        format: ``"auto"`` (TFRecord when every file is named ``*.tfrecord`` / ``train-*``),
            ``"images"`` or ``"tfrecord"``.

    Returns:
        ``(files, format)`` with ``format`` either ``"images"`` or ``"tfrecord"``.

    Raises:
        DatasetError: nothing matched, or a folder holds no image files.
    """
    if format not in ("auto", "images", "tfrecord"):
        raise DatasetError(f"format must be 'auto', 'images' or 'tfrecord', got {format!r}")
    sources = split_sources(sources)
    if not sources:
        raise DatasetError("no content image source given")
    files = []
    for source in sources:
        if os.path.isdir(source):
            pattern = os.path.join(source, "**", "*") if recursive else os.path.join(source, "*")
            found = [f for f in glob.glob(pattern, recursive=recursive)
                     if os.path.isfile(f) and (f.lower().endswith(IMAGE_EXTENSIONS)
                                               or (format != "images" and _is_tfrecord_name(f)))]
            if not found:
                raise DatasetError(f"folder {source} holds no image files "
                                   f"({', '.join(IMAGE_EXTENSIONS)}) or TFRecords")
        else:
            found = [f for f in glob.glob(source, recursive=recursive) if os.path.isfile(f)]
            if not found:
                raise DatasetError(f"no files match {source!r}")
        files.extend(found)
    files = sorted(set(files))
    if format == "auto":
        format = "tfrecord" if all(_is_tfrecord_name(f) for f in files) else "images"
    return files, format


# --- Decoding and cropping ------------------------------------------------------------------------

def decode_to_float(encoded):
    """Encoded JPEG/PNG/BMP/GIF bytes → float32 ``[H, W, 3]`` in [0, 1] (division by 255)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.float32) / 255.0


def scale_short_side(image, size):
    """Bilinear, antialiased resize of ``[H, W, 3]`` so that its shorter side is ``size``."""
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    scale = tf.cast(size, tf.float64) / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    return tf.image.resize(image, new, method="bilinear", antialias=True)


def crop(image, size, seed, mode="random"):
    """Crop ``[H, W, 3]`` (both sides ≥ ``size``) to ``[size, size, 3]``.

    ``mode="random"`` draws the offset from the stateless ``seed`` (shape [2] int), ``"center"``
    takes the middle.
    """
    if mode == "center":
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        top, left = (height - size) // 2, (width - size) // 2
        return image[top:top + size, left:left + size, :]
    return tf.image.stateless_random_crop(image, [size, size, 3], seed=seed)


# --- Content dataset ------------------------------------------------------------------------------

def _first_decodable(files, format):
    """Index of the first file (or record) that decodes, or None: fails fast if all are broken."""
    for i, path in enumerate(files):
        try:
            if format == "tfrecord":
                record = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
                if record is None:
                    continue
                encoded = tf.io.parse_single_example(
                    record, {TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
                decode_to_float(encoded[TFRECORD_IMAGE_KEY])
            else:
                decode_to_float(tf.io.read_file(path))
            return i
        except (tf.errors.OpError, ValueError):
            continue
    return None


def content_dataset(sources, image_size=256, batch_size=4, *, shuffle=True, seed=0, repeat=True,
                    resize_short_side=None, crop_mode="random", format="auto", recursive=True,
                    start_batch=0, shuffle_buffer=1024, num_parallel_calls=tf.data.AUTOTUNE,
                    augment=None, batch_slice=None):
    """Batches of content images for training: float32 ``[batch_size, image_size, image_size, 3]``.

    Args:
        sources: glob pattern(s), folder(s) or TFRecord file(s); see :func:`list_files`.
        image_size: side of the square crops.
        batch_size: images per batch; the last partial batch is dropped so shapes are static.
        shuffle: shuffle the files each epoch (and the records, for TFRecords).
        seed: makes file order and crops reproducible.
        repeat: loop forever (training); ``False`` gives one pass.
        resize_short_side: the short side is resized to this before cropping
            (default ``image_size``); must be ≥ ``image_size``. A pair ``(low, high)`` draws it
            per image, uniformly in ``[low, high)``, from ``(seed, element index)``.
        crop_mode: ``"random"`` or ``"center"``.
        format: ``"auto"``, ``"images"`` or ``"tfrecord"`` (ImageNet ``image/encoded`` layout).
        recursive: list folders recursively.
        start_batch: skip this many batches (cheaply, before decoding) to resume a run.
        shuffle_buffer: record-level shuffle buffer for TFRecords.
        augment: optional ``augment(image, key) -> image`` applied after the crop; ``key`` is a
            stateless seed (int64 ``[2]``) derived from ``(seed, element index)``, so a resumed
            or re-run pipeline draws the same augmentation for the same image.
        batch_slice: a :class:`BatchSlice` of ``batch_size``: keep only its slots of every batch
            (one worker's share; the batches have ``batch_slice.width`` images). Every file is
            listed (and every TFRecord record read) but only the slice's are decoded.

    Returns:
        A ``tf.data.Dataset`` with a ``decode_counter`` attribute (:class:`DecodeCounter`).

    Raises:
        DatasetError: nothing matched, a folder is empty, or no file can be decoded.
        ImageError: a bad size or crop option.

    Example:
        >>> ds = content_dataset("photos/*.jpg", image_size=256, batch_size=16)  # doctest: +SKIP
    """
    image_size = int(image_size)
    batch_size = int(batch_size)
    short_side = image_size if resize_short_side is None else resize_short_side
    short_range = tuple(int(s) for s in np.atleast_1d(short_side))
    if image_size < 8:
        raise ImageError(f"image_size must be at least 8 pixels, got {image_size}")
    if batch_size < 1:
        raise ImageError(f"batch_size must be at least 1, got {batch_size}")
    if min(short_range) < image_size:
        raise ImageError(f"resize_short_side={short_side} is smaller than image_size={image_size}")
    if len(short_range) not in (1, 2) or short_range[-1] < short_range[0] + (len(short_range) - 1):
        raise ImageError(f"resize_short_side={short_side} must be a size or a range (low, high) "
                         "with low < high")
    if crop_mode not in ("random", "center"):
        raise ImageError(f"crop_mode must be 'random' or 'center', got {crop_mode!r}")
    part = BatchSlice.whole(batch_size) if batch_slice is None \
        else BatchSlice(*batch_slice).check(batch_size)
    files, format = list_files(sources, recursive=recursive, format=format)
    if _first_decodable(files, format) is None:
        shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
        raise DatasetError(f"none of the {len(files)} content files could be decoded as images "
                           f"({shown})")

    counter = DecodeCounter()
    names = tf.constant(files)

    def one_epoch(epoch):
        """The files (records) of pass ``epoch``, in an order fixed by ``(seed, epoch)`` alone:
        a new iterator, a resumed run or another worker sees the same order."""
        key = tf.stack([tf.cast(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(names, key) if shuffle else names
        items = tf.data.Dataset.from_tensor_slices(order)
        if format == "tfrecord":
            items = items.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                                     num_parallel_calls=num_parallel_calls, deterministic=True)
            if shuffle:   # a fixed seed (tf.data takes no tensor): the epoch's file order varies
                items = items.shuffle(shuffle_buffer, seed=(int(seed) + 1) * 1_000_003,
                                      reshuffle_each_iteration=False)
        return items

    if format == "tfrecord":
        spec = {TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
        read = lambda record: tf.io.parse_single_example(record, spec)[TFRECORD_IMAGE_KEY]  # noqa: E731
    else:
        read = tf.io.read_file
    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    ds = epochs.flat_map(one_epoch).enumerate()
    if start_batch:
        ds = ds.skip(int(start_batch) * batch_size)
    if part.width != batch_size:   # one worker's slots, chosen before anything is decoded
        ds = ds.filter(lambda index, item: part.holds(index))

    def load(index, item):
        key = tf.stack([tf.cast(seed, tf.int64), index])
        size_key, augment_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        with tf.control_dependencies([counter._attempted.assign_add(1)]):
            image = decode_to_float(read(item))
        side = short_range[0] if len(short_range) == 1 else tf.random.stateless_uniform(
            [], size_key, minval=short_range[0], maxval=short_range[1], dtype=tf.int32)
        image = scale_short_side(image, side)
        image = crop(image, image_size, key, crop_mode)
        if augment is not None:
            image = augment(image, augment_key)
        with tf.control_dependencies([image]):  # count only after a successful decode
            counted = counter._decoded.assign_add(1)
        with tf.control_dependencies([counted]):
            return tf.identity(image)

    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.ignore_errors()
    ds = ds.batch(part.width, drop_remainder=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.decode_counter = counter
    ds.files = files
    return ds


def with_style_labels(dataset, num_styles, seed=0, start_batch=0, batch_slice=None):
    """Pair every batch with one random style label per example: ``(images, labels[B] int32)``.

    Labels come from ``(seed, batch index)`` with a stateless generator, so styles are mixed
    within a batch (as in Magenta's training) and a resumed run (``start_batch``) draws the same
    labels as an uninterrupted one. With a ``batch_slice`` (:class:`BatchSlice`) the batches are
    that slice of global batches: the labels of the whole global batch are drawn and the slice's
    kept, so every example has the label one process gives it.

    Example:
        >>> ds = with_style_labels(tf.data.Dataset.from_tensors(tf.zeros([4, 8, 8, 3])), 3)
        >>> next(iter(ds))[1].shape
        TensorShape([4])
    """
    num_styles = int(num_styles)
    if num_styles < 1:
        raise DatasetError(f"num_styles must be at least 1, got {num_styles}")

    def add_labels(index, images):
        size = tf.shape(images)[0] if batch_slice is None else batch_slice.size
        labels = tf.random.stateless_uniform(
            [size], seed=tf.stack([tf.cast(seed, tf.int64) + 7919, index]),
            minval=0, maxval=num_styles, dtype=tf.int32)
        if batch_slice is not None:
            labels = labels[batch_slice.start:batch_slice.stop]
        return images, labels

    counter = getattr(dataset, "decode_counter", None)
    labelled = dataset.enumerate(start=int(start_batch)).map(add_labels)
    labelled.decode_counter = counter
    return labelled



def validation_batch(sources, image_size, count=4):
    """Up to ``count`` centre-cropped images of ``sources`` (sorted order), float32
    ``[count, image_size, image_size, 3]``: the fixed images of TensorBoard grids; None if none.

    Example:
        >>> validation_batch("../shared/data/images/content", 32, count=2).shape  # doctest: +SKIP
        (2, 32, 32, 3)
    """
    ds = content_dataset(sources, image_size=image_size, batch_size=1, shuffle=False,
                         repeat=False, crop_mode="center")
    images = [b[0].numpy() for b in ds.take(count)]
    return np.stack(images) if images else None

# --- Style images ---------------------------------------------------------------------------------

def style_images(paths, style_size=None):
    """Load style images as float32 ``[H, W, 3]`` arrays in [0, 1].

    Args:
        paths: a file, a folder, a glob pattern, a comma-separated string or a list of them
            (:func:`nst_tf.images.image_files`). Folders and patterns are expanded and sorted (the
            label of a style is its index in the result, as in Magenta's glob order).
        style_size: if given, resize so the *shorter* side is ``style_size`` (Johnson et al.'s
            convention); ``None`` keeps the native resolution (Magenta's).

    Raises:
        ImageError: nothing matched, an empty folder, or a file cannot be read.

    Example:
        >>> imgs = style_images("examples/images/*_sq.jpg", style_size=64)
        >>> [im.shape for im in imgs][0]
        (64, 64, 3)
    """
    from nst_tf import images

    expanded = image_files(paths, what="style image")
    loaded = []
    for p in expanded:
        image = images.load_image(p)
        if style_size is not None:
            image = scale_short_side(tf.constant(image), int(style_size)).numpy()
            image = np.clip(image, 0.0, 1.0).astype(np.float32)
        loaded.append(image)
    return loaded


def style_gram_targets(extractor, styles, layers=None):
    """Gram matrices of each style image, computed once: ``{layer: float32 [N, C, C]}``.

    Row ``i`` belongs to ``styles[i]``. ``G = FᵀF / (H·W)`` per image (Magenta's normalization,
    :func:`nst_tf.losses.gram_matrix`), so styles of different sizes can be stacked.

    Args:
        extractor: a :class:`nst_tf.features.FeatureExtractor` (float32, frozen).
        styles: list of ``[H, W, 3]`` float images (different sizes allowed).
        layers: layer names to keep (default: all of the extractor's layers).

    Example:
        >>> from nst_tf.features import FeatureExtractor      # doctest: +SKIP
        >>> fx = FeatureExtractor("vgg16", layers=["block1_conv2"], weights=None)  # doctest: +SKIP
        >>> style_gram_targets(fx, [np.zeros((32, 32, 3), np.float32)])["block1_conv2"].shape  # doctest: +SKIP
        TensorShape([1, 64, 64])
    """
    from nst_tf.losses import gram_matrix

    per_layer = {}
    for image in styles:
        features = extractor(tf.convert_to_tensor(np.asarray(image, np.float32)[None]))
        for name in (layers if layers is not None else features):
            per_layer.setdefault(name, []).append(
                tf.cast(gram_matrix(tf.cast(features[name], tf.float32)), tf.float32)[0])
    return {name: tf.stack(grams) for name, grams in per_layer.items()}

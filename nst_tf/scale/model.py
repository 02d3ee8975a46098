"""The model on a dataset worker: loaded once per process, run on a batch of images.

* :func:`load_stylizer` resolves the model through :mod:`nst_tf.families` (a preset, a
  checkpoint, a ``.keras`` file, any family) once per worker process; a remote model
  (``gs://...``) is first copied to a local temporary folder.
* :func:`stylize_examples` runs a list of :class:`Example` s (a content image as uint8, its
  prepared style and its job): each group of equally sized images as one batch through the
  family's :meth:`~nst_tf.families.Family.stylize_batch`, and returns one uint8 output per
  image, or a one-line error message for an image that failed (a failing batch is retried
  image by image, so one bad image never fails its neighbours).

The pipeline forms its batches itself rather than through Beam's ``RunInference``: that
batches with ``BatchElements``, which emits a bundle's last, partial batch from
``finish_bundle``, and Beam 2.77's DaskRunner drops what ``finish_bundle`` emits (measured: 10
elements in, 8 out). Beam's own TensorFlow handlers would also need ``tensorflow_hub`` and
``tf-keras`` and cannot load Keras 3 SavedModels (apache/beam#30616, #31294).

Example:
    >>> stylizer = load_stylizer("adain")                                 # doctest: +SKIP
    >>> outputs = stylize_examples(stylizer, examples)                    # doctest: +SKIP
"""

import collections
import os
import tempfile
import threading
import typing

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from nst_tf.scale.dataset import one_line

#: Metrics namespace of the dataset pipeline.
NAMESPACE = "nst_tf"

_models = {}
_lock = threading.Lock()


class Example(typing.NamedTuple):
    """One content image on its way to the model."""

    job: typing.Any          # nst_tf.scale.dataset.Job
    pixels: np.ndarray       # uint8 [H, W, 3]
    style: typing.Any        # what Family.prepare_style returned


def _copy_remote(model):
    """A local copy of a remote model file or folder (``gs://b/m.keras``, ``gs://b/ckpt/``)."""
    from nst_tf.scale.dataset import escape

    target = tempfile.mkdtemp(prefix="nst-tf-model-")
    base = model.rstrip("/")
    found = FileSystems.match([escape(base)])[0].metadata_list
    if found and found[0].path == base:                 # one file
        files = {base: os.path.join(target, base.rsplit("/", 1)[-1])}
        local = files[base]
    else:                                               # a folder
        local = os.path.join(target, base.rsplit("/", 1)[-1])
        files = {m.path: os.path.join(local, m.path[len(base) + 1:])
                 for m in FileSystems.match([escape(base) + "/**"])[0].metadata_list}
    for source, destination in files.items():
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with FileSystems.open(source) as f, open(destination, "wb") as out:
            out.write(f.read())
    return local


class Stylizer:
    """A loaded model: its :class:`~nst_tf.families.Family` adapter and its network."""

    def __init__(self, family, network):
        self.family, self.network = family, network


def set_threads(threads):
    """Use ``threads`` TensorFlow threads (intra- and inter-op) in this process, when TensorFlow
    has not started yet (the first model load of a worker); False when it had."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError:  # already initialized (e.g. an in-process DirectRunner)
        return False
    return True


def load_stylizer(model, threads=None):
    """The :class:`Stylizer` of ``model``, loaded once per process (thread-safe). ``threads``:
    TensorFlow threads of this process (see :func:`set_threads`; None: TensorFlow's default,
    one per core)."""
    with _lock:
        if model not in _models:
            from nst_tf import families

            if threads:
                set_threads(threads)
            local = _copy_remote(model) if "://" in model else model
            _models[model] = Stylizer(*families.resolve(local))
        return _models[model]


def stylize_examples(stylizer, examples, options=None, with_strength=True):
    """One output per :class:`Example`: uint8 ``[H, W, 3]``, or a one-line error message.

    Equally sized images run as one batch (with ``options``, the family's ``stylize_batch``
    keywords, and each job's strength when ``with_strength``); when a batch fails, its images
    are run one by one so that only the image at fault fails.
    """
    options = dict(options or {})
    outputs = [None] * len(examples)
    by_shape = collections.defaultdict(list)
    for i, example in enumerate(examples):
        by_shape[example.pixels.shape].append(i)
    for indices in by_shape.values():
        group = [examples[i] for i in indices]
        try:
            results = _stylize(stylizer, group, options, with_strength)
        except Exception as e:  # noqa: BLE001  find the image at fault, keep the others
            results = [one_line(e)] if len(group) == 1 else \
                [_stylize_one(stylizer, example, options, with_strength) for example in group]
        for i, result in zip(indices, results):
            outputs[i] = result
    return outputs


def _stylize(stylizer, examples, options, with_strength):
    from nst_tf.images import float_to_uint8, uint8_to_float

    Metrics.counter(NAMESPACE, "forward_passes").inc()
    pixels = uint8_to_float(np.stack([e.pixels for e in examples]))
    strengths = [e.job.strength for e in examples] if with_strength else None
    out = stylizer.family.stylize_batch(stylizer.network, pixels, [e.style for e in examples],
                                        strengths, **options)
    return list(float_to_uint8(out))


def _stylize_one(stylizer, example, options, with_strength):
    try:
        return _stylize(stylizer, [example], options, with_strength)[0]
    except Exception as e:  # noqa: BLE001  the dead letter: reported in the manifest
        return one_line(e)

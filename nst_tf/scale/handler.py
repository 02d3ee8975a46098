"""Beam's ``RunInference`` with any nst_tf model: :class:`StylizeModelHandler`.

Beam's own TensorFlow handlers import ``tensorflow_hub`` (and with it the Keras 2 stack,
``tf-keras``) and cannot load Keras 3 SavedModels (apache/beam#30616, #31294), so this is a small
handler of our own:

* ``load_model`` resolves the model through :mod:`nst_tf.families` (a preset, a checkpoint, a
  ``.keras`` file, any family), once per worker process (:func:`load_stylizer`); a remote
  model (``gs://...``) is first copied to a local temporary folder;
* ``run_inference`` gets a list of :class:`Example` s (a content image as uint8, its prepared style
  and its job), runs each group of equally sized images as one batch through the family's
  :meth:`~nst_tf.families.Family.stylize_batch`, and yields one ``PredictionResult`` per image
  whose ``inference`` is the uint8 output, or a one-line error message when that image failed
  (a failing batch is retried image by image, so one bad image never fails its neighbours).

Example:
    >>> import apache_beam as beam                                        # doctest: +SKIP
    >>> from apache_beam.ml.inference.base import RunInference            # doctest: +SKIP
    >>> results = examples | RunInference(StylizeModelHandler("adain"))   # doctest: +SKIP
"""

import collections
import os
import tempfile
import threading
import typing

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from nst_tf.scale.dataset import one_line

#: Metrics namespace of the dataset pipeline.
NAMESPACE = "nst_tf"

_models = {}
_lock = threading.Lock()


class Example(typing.NamedTuple):
    """One content image on its way to the model."""

    job: typing.Any          # nst_tf.scale.beam.Job
    pixels: np.ndarray       # uint8 [H, W, 3]
    style: typing.Any        # what Family.prepare_style returned


def _copy_remote(model):
    """A local copy of a remote model file or folder (``gs://b/m.keras``, ``gs://b/ckpt/``)."""
    target = tempfile.mkdtemp(prefix="nst-tf-model-")
    base = model.rstrip("/")
    found = FileSystems.match([base])[0].metadata_list
    if found and found[0].path == base:                 # one file
        files = {base: os.path.join(target, base.rsplit("/", 1)[-1])}
        local = files[base]
    else:                                               # a folder
        local = os.path.join(target, base.rsplit("/", 1)[-1])
        files = {m.path: os.path.join(local, m.path[len(base) + 1:])
                 for m in FileSystems.match([base + "/**"])[0].metadata_list}
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


class StylizeModelHandler(ModelHandler):
    """A Beam ``ModelHandler`` for :class:`Example` s: see the module docstring.

    Args:
        model: a preset name or a (local or remote) path of any family.
        options: keyword options of the family's ``stylize_batch`` (``jit_compile``, ...).
        max_batch_size: images per forward pass (a bundle's last batch may be smaller).
        with_strength: pass each job's ``strength`` to the model.
        threads: TensorFlow threads per worker process (None: one per core).
    """

    def __init__(self, model, options=None, max_batch_size=8, with_strength=True, threads=None):
        # Full batches (a bundle's last may be smaller): Beam's adaptive sizing starts at 1.
        super().__init__(min_batch_size=max_batch_size, max_batch_size=max_batch_size)
        self._model = model
        self._options = dict(options or {})
        self._with_strength = with_strength
        self._threads = threads

    def load_model(self):
        return load_stylizer(self._model, self._threads)

    def run_inference(self, batch, model, inference_args=None):
        family, network = model.family, model.network
        outputs = [None] * len(batch)
        by_shape = collections.defaultdict(list)
        for i, example in enumerate(batch):
            by_shape[example.pixels.shape].append(i)
        for indices in by_shape.values():
            try:
                results = self._stylize(family, network, [batch[i] for i in indices])
            except Exception as e:  # noqa: BLE001  find the image at fault, keep the others
                results = [one_line(e)] if len(indices) == 1 else \
                    [self._stylize_one(family, network, batch[i]) for i in indices]
            for i, result in zip(indices, results):
                outputs[i] = result
        return [PredictionResult(example.job, output) for example, output in zip(batch, outputs)]

    def _stylize(self, family, network, examples):
        from nst_tf.images import float_to_uint8, uint8_to_float

        Metrics.counter(NAMESPACE, "forward_passes").inc()
        pixels = uint8_to_float(np.stack([e.pixels for e in examples]))
        strengths = [e.job.strength for e in examples] if self._with_strength else None
        out = family.stylize_batch(network, pixels, [e.style for e in examples], strengths,
                                   **self._options)
        return list(float_to_uint8(out))

    def _stylize_one(self, family, network, example):
        try:
            return self._stylize(family, network, [example])[0]
        except Exception as e:  # noqa: BLE001  the dead letter: reported in the manifest
            return one_line(e)

    def get_num_bytes(self, batch):
        return sum(example.pixels.nbytes for example in batch)

    def get_metrics_namespace(self):
        return NAMESPACE

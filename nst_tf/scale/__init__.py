"""Stylize whole datasets on Apache Beam (extra ``beam``: ``pip install "nst-tf[beam]"``).

* :func:`stylize_dataset` — one call: every image below a folder (or matching a glob), local or
  on ``gs://`` / ``s3://``, stylized into a mirrored output tree, with ``manifest.jsonl``;
  ``nst-stylize-dataset`` is its command line.
* :class:`StylizeDataset` — the same as a Beam ``PTransform`` for your own pipelines.
* :mod:`~nst_tf.scale.plan` — the checked settings; :mod:`~nst_tf.scale.output` — the output
  folder's record of them (``run.json``) and what counts as done; :mod:`~nst_tf.scale.model` —
  the model on a worker.
* :mod:`~nst_tf.scale.dataset` — the pure parts: the style/strength choice as a function of
  ``(seed, relative path)``, output names, recipes (``stylized-imagenet``), manifest rows;
  :mod:`~nst_tf.scale.preprocess` — the recipes' resizing and cropping.

``import nst_tf.scale`` loads neither Beam nor TensorFlow; the first use of a Beam name does.

Example:
    >>> from nst_tf.scale import choose
    >>> choose(0, "cats/1.jpg", num_styles=10)[0]
    2
    >>> from nst_tf.scale import stylize_dataset                           # doctest: +SKIP
    >>> stylize_dataset("photos", "out", model="adain", styles="paintings")  # doctest: +SKIP
"""

from nst_tf import _lazy

_EXPORTS = {
    "stylize_dataset": "beam", "StylizeDataset": "beam", "run_plan": "beam",
    "make_plan": "plan", "DatasetPlan": "plan",
    "choose": "dataset", "output_name": "dataset", "RECIPES": "dataset",
    "DatasetRecipe": "dataset", "ManifestRow": "dataset", "Summary": "dataset",
}
_SUBMODULES = {"beam", "model", "output", "plan", "dataset", "preprocess"}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)

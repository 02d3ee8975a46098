"""Magenta's own ``image_stylization`` transformer, run in TF1 graph mode, as a test reference.

Only ``magenta.models.image_stylization.{model, ops}`` are imported: ``magenta/__init__.py`` pulls
Magenta's music stack, so empty parent packages are registered in ``sys.modules`` first. The graph
is built in a private ``tf.Graph`` and run with ``tf.compat.v1.Session``; TF2 behaviour stays on
for the rest of the test session.

:class:`MagentaTransformer` builds the network twice on shared variables, as Magenta's
``image_stylization_transform`` script does for its two ``--which_styles`` forms:

* list mode: ``ops.conditional_instance_norm`` with int ``labels`` (image replicated per label);
* mixture mode: ``ops.weighted_instance_norm`` with a ``weights`` vector of length N.

Its variables get random values (the default init makes every style identical, which would hide
label or mixing bugs). Optionally the graph also holds what a training checkpoint carries:
``global_step``, a ``vgg_16`` variable and Adam slots.
"""

import importlib.machinery
import importlib.util
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

_PACKAGES = ("magenta", "magenta.models", "magenta.models.image_stylization",
             "magenta.models.arbitrary_image_stylization")


def import_magenta():
    """``(model, ops)`` of Magenta's image_stylization, without running ``magenta/__init__.py``.

    Outside CI a missing Magenta skips the calling test; in CI (``$CI`` set) it fails, since CI
    installs Magenta and a skipped parity test counts as a missing one.
    """
    try:
        return _import_magenta()
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Magenta's image_stylization code is not importable ({exc}); install it "
                    "with `pip install --no-deps magenta==2.1.4 tf-slim`")


def _import_magenta():
    if "magenta.models.image_stylization.model" in sys.modules and \
            all(name in sys.modules for name in _PACKAGES):
        return (sys.modules["magenta.models.image_stylization.model"],
                sys.modules["magenta.models.image_stylization.ops"])
    spec = importlib.util.find_spec("magenta")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("package 'magenta' not found")
    path = list(spec.submodule_search_locations)[0]
    for name in _PACKAGES:
        if name not in sys.modules:
            # An empty package with a real spec, so importlib.util.find_spec still works on it.
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [os.path.join(path, *name.split(".")[1:])]
            sys.modules[name] = importlib.util.module_from_spec(spec)
    model = importlib.import_module("magenta.models.image_stylization.model")
    ops = importlib.import_module("magenta.models.image_stylization.ops")
    return model, ops


class GraphReference:
    """One of Magenta's TF1 graphs in its own session, with variable values set from NumPy.

    A subclass builds its ops in ``self.graph``, sets ``self.variables``, calls
    :meth:`_add_value_feeds` last inside the graph (after every variable exists), then
    :meth:`_start` with a seed for :meth:`random_values` (which it defines).
    """

    def _add_value_feeds(self):
        v1 = tf.compat.v1
        self._values = {v.op.name: v1.placeholder(v.dtype.base_dtype, v.shape)
                        for v in self.variables}
        self._assign = [v.assign(self._values[v.op.name]) for v in self.variables]
        self._init = v1.global_variables_initializer()
        self._savers = {version: v1.train.Saver(write_version=getattr(v1.train.SaverDef, version))
                        for version in ("V1", "V2")}

    def _start(self, seed):
        self.sess = self.new_session()
        self.set_values(self.random_values(seed))

    def new_session(self):
        """A session with every variable initialized (default init), on the CPU."""
        config = tf.compat.v1.ConfigProto(device_count={"GPU": 0})
        sess = tf.compat.v1.Session(graph=self.graph, config=config)
        sess.run(self._init)
        return sess

    def variable_shapes(self):
        return {v.op.name: tuple(v.shape.as_list()) for v in self.variables}

    def set_values(self, values, sess=None):
        feed = {self._values[name]: value for name, value in values.items()}
        (sess or self.sess).run(self._assign, feed_dict=feed)

    def get_values(self, sess=None):
        names = [v.op.name for v in self.variables]
        return dict(zip(names, (sess or self.sess).run(self.variables)))


class MagentaTransformer(GraphReference):
    """Magenta's transformer for ``num_styles`` and ``alpha`` in its own graph and session.

    Args:
        num_styles: N.
        alpha: width multiplier.
        seed: seed of the random variable values.
        training_extras: also create ``global_step``, ``vgg_16/conv1/conv1_1/weights`` and Adam
            slots, so that saved checkpoints look like Magenta training checkpoints.
    """

    def __init__(self, num_styles, alpha=1.0, seed=0, training_extras=False):
        model, ops = import_magenta()
        import tf_slim as slim

        v1 = tf.compat.v1
        self.num_styles, self.alpha = num_styles, alpha
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = v1.placeholder(tf.float32, [None, None, None, 3], name="image")
            self.labels = v1.placeholder(tf.int32, [None], name="labels")
            self.weights = v1.placeholder(tf.float32, [num_styles], name="weights")
            common = {"num_categories": num_styles, "center": True, "scale": True}
            self.list_output = model.transform(
                self.image, alpha=alpha, normalizer_fn=ops.conditional_instance_norm,
                normalizer_params=dict(common, labels=self.labels))
            self.mixture_output = model.transform(
                self.image, alpha=alpha, normalizer_fn=ops.weighted_instance_norm,
                normalizer_params=dict(common, weights=self.weights), reuse=True)
            self.variables = slim.get_model_variables("transformer")
            if training_extras:
                v1.train.get_or_create_global_step()
                with v1.variable_scope("vgg_16/conv1/conv1_1"):
                    v1.get_variable("weights", [3, 3, 3, 64])
                loss = tf.reduce_mean(tf.square(self.mixture_output))
                v1.train.AdamOptimizer(1e-3).minimize(loss, var_list=self.variables)
            # What image_stylization_transform restores: its graph holds exactly these variables.
            self.transformer_saver = v1.train.Saver(self.variables)
            self._add_value_feeds()
        self._start(seed)

    def random_values(self, seed):
        """Random transformer values: He-scaled kernels, gamma in [0.5, 1.5], beta ~ N(0, 0.5)."""
        rng = np.random.default_rng(seed)
        values = {}
        for name, shape in sorted(self.variable_shapes().items()):
            if name.endswith("/gamma"):
                value = rng.uniform(0.5, 1.5, shape)
            elif name.endswith("/beta"):
                value = rng.normal(0.0, 0.5, shape)
            else:
                value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:3])), shape)
            values[name] = value.astype(np.float32)
        return values

    def save(self, path, version="V2", global_step=None, sess=None):
        """Save every variable of the graph with Magenta's Saver; returns the path written."""
        with self.graph.as_default():
            return self._savers[version].save(sess or self.sess, path, global_step=global_step,
                                              write_meta_graph=False)

    def restore(self, path):
        """A new session with the transformer variables restored from ``path`` (Magenta's way)."""
        sess = self.new_session()
        with self.graph.as_default():
            self.transformer_saver.restore(sess, path)
        return sess

    def run_list(self, image, labels, sess=None):
        """List mode: ``image`` [1,H,W,3] replicated once per label, one output per label."""
        batch = np.concatenate([image] * len(labels), axis=0)
        return (sess or self.sess).run(self.list_output, {self.image: batch,
                                                          self.labels: np.asarray(labels)})

    def run_mixture(self, images, weights, sess=None):
        """Mixture mode: one weight vector [N] for the whole batch ``images`` [B,H,W,3]."""
        return (sess or self.sess).run(self.mixture_output,
                                       {self.image: images,
                                        self.weights: np.asarray(weights, np.float32)})

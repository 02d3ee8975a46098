"""Magenta's own ``arbitrary_image_stylization`` graph (Ghiasi et al.), run in TF1 graph mode as a
test reference.

``build_model`` (InceptionV3 style prediction + ``nza_model`` transformer) is imported with the
shims of ``../shared/reference/arbitrary_style.md`` §1.9: empty parent packages (as in
:mod:`tests.magenta_reference`), ``tensorflow.python.framework.ops.Tensor = tf.Tensor`` for
tf-slim's ``smart_cond``, and ``slim.batch_norm`` built with ``updates_collections=None`` (slim's
fused batch norm, no tf_keras legacy layers). Magenta's style preprocessing
(``image_utils.resize_image``) is built in the same graph; ``image_utils`` imports
``skimage.io`` at module level (for file reading, unused here), so an empty stand-in is
registered when scikit-image is not installed.

:class:`MagentaArbitrary` gives the graph's 359 variables *benign* random values (the default
init saturates the sigmoid): He-normal kernels, style projections x0.1, gamma biases 1,
moving variances in U(0.5, 2).
"""

import importlib
import sys
import types

import numpy as np
import tensorflow as tf

from tests.magenta_reference import GraphReference, import_magenta


def import_arbitrary():
    """``(build_model, image_utils)`` modules of Magenta, importable under TF 2.21."""
    import_magenta()  # registers the parent packages (skips / fails as that function says)
    from tensorflow.python.framework import ops

    ops.Tensor = tf.Tensor  # tf_slim's smart_cond checks isinstance(x, ops.Tensor)
    try:
        import skimage.io  # noqa: F401
    except ImportError:
        skimage = sys.modules.setdefault("skimage", types.ModuleType("skimage"))
        skimage.io = sys.modules.setdefault("skimage.io", types.ModuleType("skimage.io"))
    build_model = importlib.import_module(
        "magenta.models.arbitrary_image_stylization.arbitrary_image_stylization_build_model")
    image_utils = importlib.import_module("magenta.models.image_stylization.image_utils")
    return build_model, image_utils


class MagentaArbitrary(GraphReference):
    """Magenta's inference graph (``build_model(..., is_training=False)``) in its own session.

    Feeds: ``content`` [B,H,W,3] and ``style`` [S,h,w,3] in [0, 1], or ``bottleneck``
    [S,1,1,100] directly (Magenta's interpolation feeds ``bottleneck_feat``). ``raw_style``
    [h,w,3] in 0..255 goes through Magenta's ``resize_image(…, style_size)``.
    """

    def __init__(self, seed=0, style_size=64):
        build_model, image_utils = import_arbitrary()
        import tf_slim as slim

        v1 = tf.compat.v1
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.content = v1.placeholder(tf.float32, [None, None, None, 3], name="content")
            self.style = v1.placeholder(tf.float32, [None, None, None, 3], name="style")
            with slim.arg_scope([slim.batch_norm], updates_collections=None):
                self.output, _, _, self.bottleneck = build_model.build_model(
                    self.content, self.style, trainable=False, is_training=False,
                    adds_losses=False)
            self.raw_style = v1.placeholder(tf.float32, [None, None, 3], name="raw_style")
            self.resized_style = image_utils.resize_image(self.raw_style, style_size)
            self.variables = v1.global_variables()
            self._add_value_feeds()
        self._start(seed)

    def random_values(self, seed):
        rng = np.random.default_rng(seed)
        values = {}
        for name, shape in sorted(self.variable_shapes().items()):
            if name.endswith("moving_variance"):
                value = rng.uniform(0.5, 2.0, shape)
            elif name.endswith(("moving_mean", "BatchNorm/beta")):
                value = rng.normal(0.0, 0.1, shape)
            elif name.endswith("Conv_1/biases"):         # gamma of a style norm
                value = np.ones(shape)
            elif name.endswith("biases"):
                value = rng.normal(0.0, 0.1, shape)
            else:                                         # conv kernels: He normal
                value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:3])), shape)
                if name.startswith("style_params/"):
                    value *= 0.1
            values[name] = value.astype(np.float32)
        return values

    def save(self, path, version="V2"):
        with self.graph.as_default():
            return self._savers[version].save(self.sess, path, write_meta_graph=False)

    def restore(self, path):
        """A new session with every variable restored from ``path`` by Magenta's Saver."""
        sess = self.new_session()
        with self.graph.as_default():
            self._savers["V2"].restore(sess, path)
        return sess

    def run(self, content, style, sess=None):
        return (sess or self.sess).run(self.output, {self.content: content, self.style: style})

    def embed(self, style, sess=None):
        """``bottleneck_feat`` [S,1,1,100] of preprocessed style images."""
        return (sess or self.sess).run(self.bottleneck, {self.style: style})

    def run_bottleneck(self, content, bottleneck, sess=None):
        return (sess or self.sess).run(self.output, {self.content: content,
                                                     self.bottleneck: bottleneck})

    def preprocess(self, image_uint8):
        """Magenta's ``resize_image`` on a uint8 image (fed as float 0..255) → [1,h,w,3]."""
        return self.sess.run(self.resized_style, {self.raw_style: image_uint8.astype(np.float32)})

"""The examples in the docstrings of the training package, the recipes and the family packages
run (the API reference is generated from these docstrings). ``# doctest: +SKIP`` marks examples
that need files or downloads."""

import doctest
import importlib

import pytest

MODULES = [
    "nst_tf.training", "nst_tf.training.recipe", "nst_tf.training.train",
    "nst_tf.training.trainer", "nst_tf.training.perceptual", "nst_tf.training.callbacks",
    "nst_tf.training.distribute", "nst_tf.training.schedules",
    "nst_tf.models.pastiche.recipe", "nst_tf.models.johnson.recipe",
    "nst_tf.models.adain.recipe", "nst_tf.models.texture.recipe",
    "nst_tf.models.arbitrary.recipe", "nst_tf.models.arbitrary.distill",
    "nst_tf.models.arbitrary.tflite", "nst_tf.models.arbitrary.inception",
    "nst_tf.models.arbitrary.inputs", "nst_tf.models.arbitrary.network",
    "nst_tf.models.pastiche.network", "nst_tf.networks", "nst_tf.families",
    "magenta_compat.pastiche", "nst_tf.io", "nst_tf.device",
    "nst_tf.patches", "nst_tf.norm_statistics", "nst_tf.receptive_field",
    "nst_tf.models.texture.network", "nst_tf.batch_norm", "nst_tf.training.rendezvous",
    "nst_tf.training.local_cluster",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"

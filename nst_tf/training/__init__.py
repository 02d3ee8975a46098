"""Feed-forward style training: one trainer, one driver, one recipe per mode.

==================  ==============================================================================
module              what it holds
==================  ==============================================================================
``train``           :func:`train`, the driver: strategy, build, resume, fit, finish; no mode branch
``recipe``          :class:`Recipe` (what a mode provides), the registry :data:`RECIPES`
``trainer``         :class:`StyleTrainer`, the one Keras ``train_step`` / ``test_step``
``perceptual``      :class:`PerceptualLoss`, layer weights, :class:`PerceptualRecipe` (fixed styles)
``callbacks``       checkpoints (resume, Ctrl-C), images/s, TensorBoard summaries
``distribute``      the ``tf.distribute`` strategy (also multi-worker), its input, the precision
``local_cluster``   several workers on one machine over loopback (tests, benchmarks, trying)
``schedules``       learning-rate schedules
``train_dir``       a train_dir as a model: the run's record, its latest network
==================  ==============================================================================

The modes' recipes live with their families (``nst_tf/models/<family>/recipe.py``):
``cin`` and ``finetune`` (pastiche), ``johnson``, ``adain``, ``texture`` and
``texture_stylize``, ``arbitrary``. ``nst-train`` (:mod:`nst_tf.cli.train`) runs :func:`train`.

Example:
    >>> from nst_tf.training import train
    >>> net = train("photos/*.jpg", ["starry.jpg", "scream.jpg"], "runs/cin", mode="cin",
    ...             train_steps=40000)                                         # doctest: +SKIP

The driver module is named like its function; this package binds ``train`` to the function.
"""

from nst_tf.data import validation_batch
from nst_tf.networks import extend_styles, freeze_convolutions
from nst_tf.training.callbacks import (CheckpointCallback, SummaryCallback, ThroughputCallback,
                                       restore_network, write_image, write_scalar)
from nst_tf.training.distribute import (MIXED_PRECISION, STRATEGIES, dtype_policy,
                                        make_strategy)
from nst_tf.training.perceptual import (MAGENTA_CONTENT_WEIGHTS, MAGENTA_STYLE_WEIGHTS,
                                        PerceptualLoss, PerceptualRecipe, parse_layer_weights,
                                        resolve_loss_layer)
from nst_tf.training.recipe import (RECIPES, Recipe, build_network, mode_defaults, modes,
                                    modes_taking, recipe_class)
from nst_tf.training.schedules import UlyanovSchedule, learning_rate_schedule
from nst_tf.training.trainer import StyleTrainer
from nst_tf.training.train import train
from nst_tf.training.train_dir import (CONFIG_FILE, is_train_dir, load_train_dir,
                                       read_run_config)

__all__ = ["CONFIG_FILE", "CheckpointCallback", "MAGENTA_CONTENT_WEIGHTS",
           "MAGENTA_STYLE_WEIGHTS", "MIXED_PRECISION", "PerceptualLoss", "PerceptualRecipe",
           "RECIPES", "Recipe", "STRATEGIES", "StyleTrainer", "SummaryCallback",
           "ThroughputCallback", "UlyanovSchedule", "build_network", "dtype_policy",
           "extend_styles", "freeze_convolutions", "is_train_dir",
           "learning_rate_schedule", "load_train_dir", "make_strategy", "mode_defaults",
           "modes", "modes_taking",
           "parse_layer_weights", "read_run_config", "recipe_class", "resolve_loss_layer",
           "restore_network", "train", "validation_batch", "write_image", "write_scalar"]

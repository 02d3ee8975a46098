"""Every feed-forward network in one namespace: the ``network.py`` of each family, re-exported.

* :mod:`nst_tf.models.pastiche.network`: Magenta's conditional-instance-norm multi-style
  transformer (Dumoulin et al. 2017), layer for layer, so Magenta checkpoints load into it.
* :mod:`nst_tf.models.johnson.network`: the single-style transformer of Johnson et al. (2016).
* :mod:`nst_tf.models.adain.network`: AdaIN (Huang & Belongie 2017): VGG encoder, AdaIN op,
  decoder.
* :mod:`nst_tf.models.texture.network`: Ulyanov et al.'s multi-scale texture / stylization
  generator.
* :mod:`nst_tf.models.arbitrary.network`: Magenta's arbitrary-style network (Ghiasi et al.
  2017): an InceptionV3 style prediction network (image → 100-d embedding,
  :mod:`nst_tf.models.arbitrary.inception`) — or the mobile model's MobileNetV2
  (:mod:`nst_tf.models.arbitrary.mobilenet`) — and a transformer conditioned by the embedding.

Layers shared between families live in :mod:`nst_tf.layers`. The family modules never import
this one (it imports them).

Example:
    >>> from nst_tf.networks import johnson_network, pastiche_network
    >>> pastiche_network(num_styles=3, alpha=0.25).name
    'pastiche'
"""

from nst_tf.models.adain.network import (AdaptiveInstanceNorm, adain_config, adain_network,
                                         is_adain_network)
from nst_tf.batch_norm import BatchNorm, SlimBatchNorm
from nst_tf.models.arbitrary.inception import inception_convs, inception_keras_name
from nst_tf.models.arbitrary.network import (EMBEDDING_SIZE, MIN_STYLE_SIZE, STYLE_NORM_SCOPES,
                                             STYLE_SIZE, ConditionalStyleNorm, arbitrary_config,
                                             arbitrary_network, arbitrary_transformer,
                                             is_arbitrary_network, style_prediction_network,
                                             style_predictor_of, transformer_of)
from nst_tf.models.johnson.network import JOHNSON_DOWN, JOHNSON_UP, johnson_network
from nst_tf.models.pastiche.network import (MIN_PASTICHE_SIZE, PASTICHE_LAYERS, ConvSpec,
                                            as_weights_network, check_pastiche_input,
                                            extend_styles, freeze_convolutions, is_conditional,
                                            keras_name, magenta_variable_names, pastiche_config,
                                            pastiche_network, pastiche_output_size,
                                            pastiche_widths, set_fast)
from nst_tf.models.texture.network import (check_texture_size, is_texture_network,
                                           noise_layers, texture_config, texture_network,
                                           texture_ratios)

__all__ = ["AdaptiveInstanceNorm", "adain_config", "adain_network", "is_adain_network",
           "ConditionalStyleNorm", "EMBEDDING_SIZE", "MIN_STYLE_SIZE", "STYLE_NORM_SCOPES",
           "STYLE_SIZE", "BatchNorm", "SlimBatchNorm", "arbitrary_config", "arbitrary_network",
           "arbitrary_transformer", "inception_convs", "inception_keras_name",
           "is_arbitrary_network", "style_prediction_network", "style_predictor_of",
           "transformer_of",
           "JOHNSON_DOWN", "JOHNSON_UP", "johnson_network",
           "ConvSpec", "MIN_PASTICHE_SIZE", "PASTICHE_LAYERS", "as_weights_network",
           "check_pastiche_input", "extend_styles", "freeze_convolutions", "is_conditional",
           "keras_name", "magenta_variable_names", "pastiche_config", "pastiche_network",
           "pastiche_output_size", "pastiche_widths", "set_fast",
           "check_texture_size", "is_texture_network", "noise_layers", "texture_config",
           "texture_network", "texture_ratios"]

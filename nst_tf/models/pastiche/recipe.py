"""Train pastiche networks: ``nst-train --mode=cin`` (Dumoulin et al.) and ``--mode=finetune``.

* :class:`CinRecipe`: one conditional-instance-norm network for N styles, each example with a
  random style label, Magenta's loss and defaults (VGG-16 with average pooling, content
  ``vgg_16/conv3``: 1, style ``vgg_16/conv1..4``: 1e-4, Adam 1e-3, 40000 steps).
* :class:`FinetuneRecipe`: add the styles to a trained pastiche checkpoint and train only their
  gamma / beta rows (:func:`~nst_tf.networks.extend_styles`,
  :func:`~nst_tf.networks.freeze_convolutions`), as Magenta's ``image_stylization_finetune``.

Both write Magenta checkpoints with ``--export_magenta``
(:func:`nst_tf.export.export_magenta_checkpoint`).

Example:
    >>> from nst_tf.training import train
    >>> net = train("photos/", "styles/*.jpg", "runs/cin", mode="cin")          # doctest: +SKIP
"""

from nst_tf.errors import ConfigError
from nst_tf.training.perceptual import PerceptualRecipe


class CinRecipe(PerceptualRecipe):
    """``mode="cin"``: a labels-input :func:`~nst_tf.networks.pastiche_network` for every style.

    Options: those of :class:`~nst_tf.training.PerceptualRecipe`, and ``alpha`` (width
    multiplier, default 1).
    """

    mode = "cin"
    summary = "one conditional-instance-norm network for all styles"
    options = {**PerceptualRecipe.options, "alpha": 1.0}
    exports_magenta = True

    @classmethod
    def build_network(cls, num_styles, **options):
        from nst_tf.models.pastiche.network import pastiche_network

        return pastiche_network(num_styles, alpha=options["alpha"], style_input="labels"), 0

    @classmethod
    def network_from_config(cls, config):
        from nst_tf.models.pastiche.network import pastiche_network

        # Fine-tuning's styles sit after the extended checkpoint's (label_offset of them).
        return pastiche_network(config["num_styles"] + config.get("label_offset", 0),
                                alpha=config["alpha"], style_input="labels")

    @classmethod
    def inference_network(cls, network):
        from nst_tf.models.pastiche.network import as_weights_network

        return as_weights_network(network)


class FinetuneRecipe(CinRecipe):
    """``mode="finetune"``: the styles added to the pastiche ``checkpoint``, only their gamma /
    beta rows trained (labels ``N_old ...``).

    Options: those of :class:`~nst_tf.training.PerceptualRecipe`, and

    * ``checkpoint`` (required): the pastiche checkpoint to extend (file, folder, preset name
      such as ``"varied"``, or the train_dir of a ``cin`` or ``finetune`` run);
    * ``alpha``: None (the checkpoint's) or a check of the checkpoint's width multiplier;
    * ``new_style_init``: ``"identity"`` (gamma 1, beta 0, Magenta's) or ``"mean"`` of the old
      rows.
    """

    mode = "finetune"
    summary = "add the styles to --checkpoint and train only their gamma / beta"
    options = {**PerceptualRecipe.options, "checkpoint": None, "alpha": None,
               "new_style_init": "identity"}

    def check(self):
        if not self.options["checkpoint"]:
            raise ConfigError("mode 'finetune' needs --checkpoint (a pastiche checkpoint to "
                              "extend)")
        super().check()

    @classmethod
    def build_network(cls, num_styles, **options):
        from nst_tf.models.pastiche.family import load_training_network
        from nst_tf.models.pastiche.network import extend_styles, freeze_convolutions

        base = load_training_network(options["checkpoint"], alpha=options["alpha"])
        old = base.get_layer("contract_conv1_norm").num_styles
        network = extend_styles(base, num_styles, init=options["new_style_init"])
        freeze_convolutions(network)
        return network, old

    def config(self):
        from nst_tf.models.pastiche.network import pastiche_config

        return {**super().config(), "alpha": pastiche_config(self.network)["alpha"]}

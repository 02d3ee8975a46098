"""Train Johnson et al.'s single-style network: ``nst-train --mode=johnson``.

Example:
    >>> from nst_tf.training import train
    >>> net = train("photos/", "starry.jpg", "runs/starry", mode="johnson", style_size=512,
    ...             tv_weight=1e-2)                                             # doctest: +SKIP
"""

from nst_tf.training.perceptual import PerceptualRecipe


class JohnsonRecipe(PerceptualRecipe):
    """``mode="johnson"``: :func:`~nst_tf.networks.johnson_network` on one style image.

    Options: those of :class:`~nst_tf.training.PerceptualRecipe` (Magenta's loss defaults), and
    ``alpha`` (width multiplier, default 1).
    """

    mode = "johnson"
    summary = "one style, a single-style network"
    options = {**PerceptualRecipe.options, "alpha": 1.0}
    one_style = True

    @classmethod
    def build_network(cls, num_styles, **options):
        from nst_tf.models.johnson.network import johnson_network

        return johnson_network(alpha=options["alpha"]), 0

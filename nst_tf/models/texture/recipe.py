"""Train texture networks (Ulyanov et al. 2016, 2017): ``--mode=texture`` / ``texture_stylize``.

Both modes default to the paper's setting (Ulyanov et al. 2016, §4 and ``texture_nets``): VGG-19
with max pooling, the Gram loss on relu1_1 … relu5_1 with the paper's per-layer normalization
(:func:`ulyanov_style_weights`, style weight 1e3), content relu4_2 with weight 0.6 (stylization
only), Adam at 0.1 for 10 epochs of 200 iterations with the rate ×0.7 per epoch after 4
(:class:`~nst_tf.training.schedules.UlyanovSchedule`). The 2017 diversity term is the
``diversity_weight`` option of every :class:`~nst_tf.training.PerceptualRecipe`.

Example:
    >>> ulyanov_style_weights(1e3)["block5_conv1"] == 1e3 / 512 ** 2
    True
"""

import numpy as np

from nst_tf.data import DecodeCounter
from nst_tf.errors import ConfigError
from nst_tf.training.perceptual import PerceptualRecipe
from nst_tf.training.schedules import UlyanovSchedule  # noqa: F401  (the paper's schedule)

#: The style layers of Texture Networks: relu1_1 … relu5_1 of VGG-19 (Keras names).
TEXTURE_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                        "block5_conv1")
#: Their channel counts C_l.
TEXTURE_STYLE_CHANNELS = (64, 128, 256, 512, 512)
#: The stylization network's content layer: relu4_2.
TEXTURE_CONTENT_LAYER = "block4_conv2"


def ulyanov_style_weights(style_weight=1e3):
    """``{layer: style_weight / C_l²}`` on :data:`TEXTURE_STYLE_LAYERS`.

    ``texture_nets`` normalizes the Gram matrix by ``C·H·W`` (ours, :func:`nst_tf.losses.gram_matrix`,
    by ``H·W``) and takes the MSE, so its per-layer loss is ours divided by ``C_l²``: these
    weights give exactly its loss (style weight 1e3 in its stylization setting).

    Example:
        >>> ulyanov_style_weights(64.0 ** 2)["block1_conv1"]
        1.0
    """
    return {layer: float(style_weight) / channels ** 2
            for layer, channels in zip(TEXTURE_STYLE_LAYERS, TEXTURE_STYLE_CHANNELS)}


def canvas_dataset(batch_size, image_size):
    """The input of a texture (noise-only) network in training: endless all-zero canvases
    ``[batch_size, image_size, image_size, 3]`` (the network draws its own noise), with a
    :class:`~nst_tf.data.DecodeCounter` that counts nothing."""
    import tensorflow as tf

    canvas = tf.zeros([int(batch_size), int(image_size), int(image_size), 3], tf.float32)
    dataset = tf.data.Dataset.from_tensors(canvas).repeat()
    dataset.decode_counter = DecodeCounter()
    return dataset


class TextureRecipe(PerceptualRecipe):
    """``mode="texture"``: a :func:`~nst_tf.networks.texture_network` that makes the texture of
    one style image from noise alone (no content images).

    Options: those of :class:`~nst_tf.training.PerceptualRecipe` with the paper's defaults, and
    ``network_options``: arguments of :func:`~nst_tf.networks.texture_network` (``num_scales``,
    ``channels``, ``norm``, ``padding``, ``seed``, ...).
    """

    mode = "texture"
    summary = "a texture network from noise (no content images)"
    network_mode = "texture"
    uses_content = False
    one_style = True
    defaults = {"learning_rate": 0.1, "train_steps": 2000}
    options = {**PerceptualRecipe.options, "backbone": "vgg19", "pooling": "max",
               "style_weights": ulyanov_style_weights(1e3), "content_weights": {},
               "lr_schedule": "ulyanov", "network_options": None}

    @classmethod
    def build_network(cls, num_styles, **options):
        from nst_tf.models.texture.network import texture_network

        network_options = options["network_options"] or {}
        try:
            return texture_network(mode=cls.network_mode, **network_options), 0
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"texture network options {network_options}: {exc}") from None

    def check(self):
        super().check()
        network_options = self.options["network_options"] or {}
        num_scales = network_options.get("num_scales", 6)
        padding = network_options.get("padding") or \
            ("circular" if self.network_mode == "texture" else "reflect")
        if padding == "reflect" and isinstance(num_scales, int) and num_scales >= 1:
            coarsest = 2 ** (num_scales - 1)   # the coarsest scale is image_size / coarsest
            if self.image_size < 2 * coarsest:  # reflect padding by 1 needs 2 pixels
                raise ConfigError(
                    f"image_size {self.image_size} is too small for {num_scales} scales with "
                    f"reflect padding: the coarsest scale (1/{coarsest}) needs 2 pixels; use "
                    f"image_size >= {2 * coarsest} or fewer num_scales")

    def config(self):
        return {**super().config(), "network_options": self.options["network_options"] or {}}

    def dataset(self, start_step, batch_slice=None):
        width = self.batch_size if batch_slice is None else batch_slice.width
        return canvas_dataset(width, self.image_size)

    def validation_images(self):
        return np.zeros((4, self.image_size, self.image_size, 3), np.float32)


class TextureStylizeRecipe(TextureRecipe):
    """``mode="texture_stylize"``: Ulyanov et al.'s stylization network (noise plus the content
    image at every scale), content loss on relu4_2 (weight 0.6) by default."""

    mode = "texture_stylize"
    summary = "Ulyanov et al.'s stylization network"
    network_mode = "stylize"
    uses_content = True
    options = {**TextureRecipe.options, "content_weights": {TEXTURE_CONTENT_LAYER: 0.6}}

    dataset = PerceptualRecipe.dataset
    validation_images = PerceptualRecipe.validation_images

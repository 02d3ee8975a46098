"""Run a single-style image-to-image network (Johnson et al.) through :func:`nst_tf.stylize`.

Any Keras model with one ``[B, H, W, 3]`` image input and one image output belongs to this family:
:func:`~nst_tf.networks.johnson_network` and the networks ``nst-train --mode=johnson`` exports.
There is no style to choose, so ``style`` must be ``None``.

Example:
    >>> import numpy as np
    >>> import nst_tf
    >>> from nst_tf.networks import johnson_network
    >>> nst_tf.stylize(np.random.rand(2, 30, 30, 3), model=johnson_network(alpha=0.25)).shape
    (2, 32, 32, 3)
"""

import numpy as np

from nst_tf import images
from nst_tf.errors import ConfigError
from nst_tf.families import Family


def _is_image_to_image(network):
    inputs, outputs = getattr(network, "inputs", None), getattr(network, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        return False
    return len(inputs[0].shape) == 4 and inputs[0].shape[-1] == 3 and outputs[0].shape[-1] == 3


def _check_no_style(network, style):
    if style is not None:
        raise ConfigError(f"{network.name!r} is a single-style network: it takes no style "
                          f"(got {type(style).__name__} {style!r}); pass style=None")


class SingleStyleFamily(Family):
    """:func:`nst_tf.stylize` adapter for networks that take an image only."""

    name = "single-style"

    def owns_network(self, network):
        return _is_image_to_image(network)

    def serving_module(self, network, image_size=None):
        from nst_tf.export import ImageModule

        return ImageModule(network, image_size=image_size)

    def stylize(self, network, content, style, *, crop=False, batch_size=4, jit_compile="auto"):
        """Output ``[H', W', 3]`` for one image, ``[B, H', W', 3]`` for a batch, float32 in
        [0, 1]; ``crop=True`` cuts it back to the input's ``H x W``."""
        import tensorflow as tf

        from nst_tf.device import resolve_jit_compile

        _check_no_style(network, style)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch, single = images.image_batch(content, what="content image")
        forward = _forward(network, resolve_jit_compile(jit_compile))
        result = np.concatenate([forward(tf.constant(batch[i:i + batch_size])).numpy()
                                 for i in range(0, len(batch), batch_size)])
        if crop:
            result = result[:, :batch.shape[1], :batch.shape[2]]
        result = np.clip(result, 0.0, 1.0).astype(np.float32)
        return result[0] if single else result


    def patch_models(self, network, batch, style, *, crop=False, batch_size=4,
                     jit_compile="auto"):
        import tensorflow as tf

        from nst_tf.device import resolve_jit_compile
        from nst_tf.patches import PatchModel

        _check_no_style(network, style)

        def body(image):
            return tf.cast(network(image, training=False), tf.float32)

        jit = resolve_jit_compile(jit_compile)
        size = tuple(batch.shape[1:3]) if crop else None
        return False, [[PatchModel(image, body, ((network, 0),), key=("single", network, jit),
                                   jit_compile=jit, min_size=MIN_SIZE, crop=size)]
                       for image in batch]


#: Smallest image side :meth:`SingleStyleFamily.patch_models` makes thumbnails of (Johnson's
#: network needs 5 pixels: its first layer reflect-pads by 4).
MIN_SIZE = 16

_FORWARD = {}


def _forward(network, jit):
    """One shape-polymorphic compiled forward pass per network and XLA setting."""
    import tensorflow as tf

    key = (id(network), jit)
    if key not in _FORWARD:
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
                     jit_compile=jit)
        def forward(batch):
            return tf.cast(network(batch, training=False), tf.float32)

        _FORWARD.clear()  # one network at a time: keeps memory bounded
        _FORWARD[key] = (network, forward)
    return _FORWARD[key][1]

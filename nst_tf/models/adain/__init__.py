"""AdaIN (Huang & Belongie 2017): any style image through one op between a VGG encoder and a decoder.

* :mod:`.network`: :func:`~nst_tf.models.adain.network.adain_network`, the AdaIN op and layers.
* :mod:`.family`: :func:`nst_tf.stylize` with style images, mixing, α, colour and masks
  (pytorch-AdaIN's released weights: :mod:`torch_compat.adain`).
* :mod:`.recipe`: ``nst-train --mode=adain``.
"""

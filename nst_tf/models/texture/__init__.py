"""Texture networks (Ulyanov et al. 2016, 2017): textures from noise, and stylization.

* :mod:`.network`: :func:`~nst_tf.models.texture.network.texture_network`.
* :mod:`.family`: :func:`nst_tf.synthesize` and the :func:`nst_tf.stylize` adapter.
"""

"""Johnson et al.'s single-style network (2016) and any image-to-image network.

* :mod:`.network`: :func:`~nst_tf.models.johnson.network.johnson_network`.
* :mod:`.family`: :func:`nst_tf.stylize` for networks that take an image only.
"""

"""Magenta's multi-style "pastiche" network (Dumoulin et al. 2017): conditional instance norm.

* :mod:`.network`: :func:`~nst_tf.models.pastiche.network.pastiche_network`, layer for layer
  Magenta's transformer (checkpoints: :mod:`magenta_compat.checkpoint`).
* :mod:`.family`: :func:`nst_tf.stylize` with style indices, mixtures or ``which_styles``.
"""

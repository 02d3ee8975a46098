"""Magenta's arbitrary-style network (Ghiasi et al. 2017): an Inception-v3 style embedding.

* :mod:`.network`: the style prediction network and the embedding-conditioned transformer.
* :mod:`.family`: :func:`nst_tf.stylize` with style images, embeddings, identity interpolation
  (checkpoints: :mod:`magenta_compat.arbitrary`).
* :mod:`.hub`: TF-Hub modules with the signature of Magenta's, loaded and exported.
"""

"""One package per feed-forward model family: everything that is the family's own.

=============  ================================================================================
family         what it is
=============  ================================================================================
pastiche       Dumoulin et al.'s conditional-instance-norm network (Magenta ``image_stylization``)
johnson        Johnson et al.'s single-style network (and any image-to-image network)
adain          Huang & Belongie's AdaIN: VGG encoder, AdaIN op, decoder (pytorch-AdaIN weights)
arbitrary      Ghiasi et al.'s arbitrary-style network (Magenta ``arbitrary_image_stylization``)
texture        Ulyanov et al.'s texture and stylization networks
=============  ================================================================================

Each package holds, where they apply: ``network.py`` (the Keras network), ``family.py`` (its
:class:`~nst_tf.families.Family` adapter: what :func:`nst_tf.stylize` does with it) and
``recipe.py`` (its :class:`~nst_tf.training.Recipe`: what ``nst-train --mode=...`` trains).
Foreign checkpoint formats stay in ``magenta_compat`` and ``torch_compat``, called from here.
Shared building blocks (layers, features, losses, data, ...) are the flat modules of
:mod:`nst_tf`. A new family is a new package here plus one line in
:data:`nst_tf.families.FAMILIES` and one in :data:`nst_tf.training.RECIPES`.

Nothing is imported here: ``import nst_tf.models`` is free.
"""

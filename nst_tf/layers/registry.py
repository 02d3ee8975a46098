"""The decorator every nst_tf Keras layer is registered with: the ``nst_tf`` package, so a
``.keras`` file names a layer ``nst_tf>ReflectConv2D`` whichever module defines it (moving a layer
between modules keeps old files loading; :func:`nst_tf.families.register_keras_objects` imports
:mod:`nst_tf.layers`, which imports every layer module).

Example:
    >>> import keras
    >>> from nst_tf.layers import ReflectConv2D
    >>> keras.saving.get_registered_name(ReflectConv2D)
    'nst_tf>ReflectConv2D'
"""

import keras

#: ``@register`` above a Keras layer class: serializable as ``nst_tf>ClassName``.
register = keras.saving.register_keras_serializable(package="nst_tf")

"""The ``nst-*`` command-line programs: one absl app per module, started by
:mod:`nst_tf.cli.launch`, sharing :mod:`nst_tf.cli.runner` (flags, one-line errors) and
:mod:`nst_tf.cli.quiet` (TensorFlow's native log filtered)."""

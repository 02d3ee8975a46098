"""Feed-forward style training (being split into a package)."""

from nst_tf.training.trainer import *  # noqa: F401,F403
from nst_tf.training.trainer import _check_config, _write_or_check_config  # noqa: F401

#!/usr/bin/env python
"""Train a feed-forward style network (same as ``nst-train``).

Run ``python scripts/train.py --helpfull`` for the flags; see :mod:`nst_tf.cli.train`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-train")

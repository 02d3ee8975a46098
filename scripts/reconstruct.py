#!/usr/bin/env python
"""Reconstruct an image from one layer's content or style representation (same as
``nst-reconstruct``).

Run ``python scripts/reconstruct.py --help`` for the flags; see :mod:`nst_tf.cli.reconstruct`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-reconstruct")

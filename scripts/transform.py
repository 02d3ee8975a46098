#!/usr/bin/env python
"""Stylize an image with a Magenta-compatible multi-style network (same as ``nst-transform``).

Run ``python scripts/transform.py --helpfull`` for the flags; see :mod:`nst_tf.cli.transform`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-transform")

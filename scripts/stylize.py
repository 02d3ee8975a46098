#!/usr/bin/env python
"""Gatys neural style transfer (same as ``nst-stylize``).

Run ``python scripts/stylize.py --help`` for the flags; see :mod:`nst_tf.cli.stylize`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-stylize")

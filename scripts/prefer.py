#!/usr/bin/env python
"""Find the style mix a person likes from pairwise choices (same as ``nst-prefer``).

Run ``python scripts/prefer.py --help`` for the flags; see :mod:`nst_tf.cli.prefer`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-prefer")

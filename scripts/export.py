#!/usr/bin/env python
"""Export a multi-style network to SavedModel or TFLite (same as ``nst-export``).

Run ``python scripts/export.py --helpfull`` for the flags; see :mod:`nst_tf.cli.export`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-export")

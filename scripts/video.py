#!/usr/bin/env python
"""Stylize a video without flicker (same as ``nst-video``).

Run ``python scripts/video.py --helpfull`` for the flags; see :mod:`nst_tf.cli.video`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-video")

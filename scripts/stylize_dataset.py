#!/usr/bin/env python
"""Stylize a whole dataset with Apache Beam (same as ``nst-stylize-dataset``).

Run ``python scripts/stylize_dataset.py --helpfull`` for the flags; see
:mod:`nst_tf.cli.stylize_dataset`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-stylize-dataset")

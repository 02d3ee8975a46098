#!/usr/bin/env python
"""AdaIN style transfer (same as ``nst-adain``; flags like pytorch-AdaIN's ``test.py``).

Run ``python scripts/adain.py --helpfull`` for the flags; see :mod:`nst_tf.cli.adain`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nst_tf.cli.launch import launch  # noqa: E402

if __name__ == "__main__":
    launch("nst-adain")

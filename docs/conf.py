"""Sphinx configuration of the nst-tf documentation (pages in Markdown through MyST).

Build: ``sphinx-build -W -n docs docs/_build/html`` (``pip install -e ".[docs]"``);
``tests/test_docs.py`` runs the same build with warnings as errors.
"""

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(DOCS, "_ext"))
sys.path.insert(0, os.path.dirname(DOCS))          # the repository: nst_tf, magenta_compat, ...
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # autodoc imports TensorFlow

project = "nst-tf"
author = "nst-tf authors"
copyright = "nst-tf authors, Apache-2.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "nst_docs",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

# Every reference to our own code must resolve (a renamed function fails the build, also when a
# docstring names it relatively); names of other libraries are not checked (no network here for
# their inventories), nor are private names (documented nowhere, shown as base classes).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(builtins|numpy|np|tensorflow|tf|keras|apache_beam|beam|absl|PIL|flask"
               r"|werkzeug|pickle|time|os|collections|typing|abc)(\..*)?"),
    (r"py:.*", r"int|float|str|bool|bytes|dict|list|tuple|set|object|None|callable|Exception"
               r"|ValueError|TypeError|KeyError|OSError|RuntimeError|FileNotFoundError"
               r"|PermissionError|KeyboardInterrupt"),
    (r"py:.*", r"(.*\.)?_\w+"),
]

napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
# Each module documents what it defines; names it re-exports (package __all__) link there.
autodoc_default_options = {"members": True, "ignore-module-all": True, "show-inheritance": True}
# The optional extras' modules that our modules import at module level are mocked, so the site
# builds the same with only the "docs" extra installed (tests/test_docs.py builds it so).
autodoc_mock_imports = ["apache_beam", "flask", "werkzeug"]

html_theme = "alabaster"
html_title = "nst-tf"
html_theme_options = {"description": "Neural style transfer for TensorFlow / Keras 3",
                      "fixed_sidebar": True, "sidebar_collapse": True,
                      "page_width": "1240px", "sidebar_width": "240px"}
html_static_path = ["_static"]
html_css_files = ["nst.css"]   # 100-column code fits the text column; citation numbers

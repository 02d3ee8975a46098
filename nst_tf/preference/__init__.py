"""Find the style mix a person likes from pairwise choices.

* :class:`PreferenceLearner` (``learner``): a preference-GP reward model over weight vectors,
  query selection (``next_pair``) and the recommended mix (``best``). NumPy only.
* :class:`SimulatedLabeler` and the hidden-utility families (``labeler``): a stand-in person for
  tests and ``benchmarks/preference.py``.
* ``store`` (SQLite), ``app`` (the Flask page, extra ``nst-tf[ui]``) and ``nst-prefer`` (the CLI)
  put a real person in the loop; Flask is imported only by ``app``.

Example:
    >>> from nst_tf.preference import PreferenceLearner
    >>> learner = PreferenceLearner(num_styles=32)
    >>> a, b = learner.next_pair()
    >>> learner.add(a, b, preferred=0)
    >>> learner.best().shape
    (32,)
"""

from nst_tf import _lazy

_EXPORTS = {
    "PreferenceLearner": "learner", "PreferenceError": "learner",
    "SimulatedLabeler": "labeler", "make_utility": "labeler",
}
_SUBMODULES = {"learner", "gp", "simplex", "labeler", "store", "app"}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)

"""Find the style mix a person likes from their picks among k mixes (a 2×2 grid, or pairs).

* :class:`PreferenceLearner` (``learner``): a preference-GP reward model over weight vectors
  (``gp``), question selection (``next_query``, ``next_pair``; qEUBO in ``acquisition``) and a
  cautious recommended mix (``best``). NumPy only.
* :class:`SimulatedLabeler` and the hidden-utility families (``labeler``): a stand-in person for
  tests and ``benchmarks/preference.py``; ``tastes`` draws families of such people (a tuning
  and a validation set); ``baseline`` is the pairs learner from before k-option questions.
* ``questions`` (the kinds of question: ``pair``, ``grid4``), ``store`` (SQLite), ``session``,
  ``app`` and ``pages`` (the Flask page, extra ``nst-tf[ui]``) and ``nst-prefer`` (the CLI) put a
  real person in the loop; Flask is imported only by ``app``.

Example:
    >>> from nst_tf.preference import PreferenceLearner
    >>> learner = PreferenceLearner(num_styles=32)
    >>> options = learner.next_query(k=4)
    >>> learner.add_choice(options, 1)
    >>> learner.best().shape
    (32,)
"""

from nst_tf import _lazy

_EXPORTS = {
    "PreferenceLearner": "learner", "PreferenceError": "learner",
    "SimulatedLabeler": "labeler", "make_utility": "labeler",
}
_SUBMODULES = {"learner", "gp", "acquisition", "simplex", "labeler", "tastes", "baseline",
               "questions", "store", "session", "app", "pages"}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _EXPORTS, _SUBMODULES)

"""Kinds of question a session asks: a pair (two images) or a grid of four (pick one of four).

Each kind is a small adapter (``KINDS``) that the store, the session, the web page and the
export share: where its questions and answers are stored, which answers exist, how an answer
feeds the learner, how it is exported, and its page.

* ``pair``: two mixes side by side; answers ``left``, ``right``, ``tie``, ``skip``. Stored in the
  tables ``pairs`` / ``comparisons`` (the format of sessions from before grids, which still
  load); exported as ``{"left", "right", "choice", "annotator", "time"}``.
* ``grid4``: four mixes in a 2×2 grid; answers ``0``…``3`` (the position, row by row),
  ``none`` (none preferred) and ``skip``. Stored in ``questions`` / ``answers``; exported as
  ``{"options": [[...] × 4], "choice": index | "none" | "skip", "annotator", "time"}``.

Both show the mixes in a random order, recorded with the question; ``skip`` teaches the learner
nothing; a tie / ``none`` says no option was preferred (each gets an equal share).

Example:
    >>> kind = KINDS["grid4"]
    >>> kind.check_choice(2), kind.check_choice("none")
    ('2', 'none')
    >>> kind.chosen("2"), kind.chosen("none"), kind.chosen("skip") is SKIP
    (2, None, True)
"""

import json

import numpy as np

from nst_tf.errors import NSTError

#: ``chosen`` of an answer that teaches the learner nothing.
SKIP = object()


class ChoiceError(NSTError, ValueError):
    """An answer that is not one of the question's choices."""


def _vector(w):
    return json.dumps([round(float(x), 6) for x in w])


class PairQuestions:
    """Two mixes, left and right (the page of the first ``nst-prefer``)."""

    name, k = "pair", 2
    question_table, answer_table, question_column = "pairs", "comparisons", "pair_id"
    option_columns = ("left_weights", "right_weights")
    choices = ("left", "right", "tie", "skip")
    _learner = {"left": 0, "right": 1, "tie": None, "skip": SKIP}

    def encode_options(self, options):
        return [_vector(w) for w in options]

    def decode_options(self, row):
        return [json.loads(row[c]) for c in self.option_columns]

    def shuffle(self, rng, options):
        """``(options as shown, order)``: ``order`` is ``"ab"`` or ``"ba"`` (swapped)."""
        if rng.random() < 0.5:
            return [options[1], options[0]], "ba"
        return [options[0], options[1]], "ab"

    def encode_order(self, order):
        return order

    def decode_order(self, text):
        return text

    def check_choice(self, choice):
        """The stored form of an answer; ChoiceError names the valid ones."""
        if not isinstance(choice, str) or choice not in self.choices:
            raise ChoiceError(f"choice must be one of {', '.join(self.choices)}, got {choice!r}")
        return choice

    def chosen(self, stored):
        """What the learner gets: the index of the preferred option, None, or :data:`SKIP`."""
        return self._learner[stored]

    def export_row(self, answer):
        left, right = answer["options"]
        return {"left": left, "right": right, "choice": answer["choice"],
                "annotator": answer["annotator"], "time": answer["time"]}

    def csv_row(self, row):
        return dict(row, left=json.dumps(row["left"]), right=json.dumps(row["right"]))

    export_fields = ("left", "right", "choice", "annotator", "time")

    def page_state(self, question, keys):
        return {"pair": {"id": question["id"], "left": keys[0], "right": keys[1]}}

    id_field = "pair_id"


class GridQuestions:
    """Four mixes in a 2×2 grid; one click picks the one the person likes best."""

    name, k = "grid4", 4
    question_table, answer_table, question_column = "questions", "answers", "question_id"
    option_columns = ("options",)
    choices = ("0", "1", "2", "3", "none", "skip")

    def encode_options(self, options):
        return ["[" + ", ".join(_vector(w) for w in options) + "]"]

    def decode_options(self, row):
        return json.loads(row["options"])

    def shuffle(self, rng, options):
        """``(options as shown, order)``: ``order[i]`` is the learner's option at position i."""
        order = [int(i) for i in rng.permutation(len(options))]
        return [options[i] for i in order], order

    def encode_order(self, order):
        return json.dumps(order)

    def decode_order(self, text):
        return json.loads(text)

    def check_choice(self, choice):
        """The stored form of an answer (positions as text); ChoiceError names the valid ones."""
        if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool) \
                and 0 <= choice < self.k:
            return str(int(choice))
        if isinstance(choice, str) and choice in ("none", "skip"):
            return choice
        raise ChoiceError(f"choice must be a position 0-{self.k - 1}, 'none' or 'skip', "
                          f"got {choice!r}")

    def chosen(self, stored):
        return {"none": None, "skip": SKIP}[stored] if not stored.isdigit() else int(stored)

    def export_row(self, answer):
        choice = answer["choice"]
        return {"options": answer["options"],
                "choice": int(choice) if choice.isdigit() else choice,
                "annotator": answer["annotator"], "time": answer["time"]}

    def csv_row(self, row):
        return dict(row, options=json.dumps(row["options"]))

    export_fields = ("options", "choice", "annotator", "time")

    def page_state(self, question, keys):
        return {"question": {"id": question["id"], "options": keys}}

    id_field = "question_id"


KINDS = {kind.name: kind for kind in (PairQuestions(), GridQuestions())}


def kind_named(name):
    """The question kind called ``name``; a ChoiceError lists the known ones."""
    if name not in KINDS:
        raise ChoiceError(f"unknown question kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]

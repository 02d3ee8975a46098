"""Parse Magenta's ``--which_styles`` flag and name the output files the way Magenta does.

Magenta's ``image_stylization_transform`` reads ``--which_styles`` with ``ast.literal_eval``:

* a **list** ``[0, 3]`` → *list mode*: one output per listed style, saved as
  ``{basename}_{style}.png`` (``out_0.png``, ``out_3.png``);
* a **dict** ``{0: 0.5, 3: 0.5}`` → *mixture mode*: one output whose conditional-instance-norm
  parameters are ``Σ wᵢ·γᵢ`` and ``Σ wᵢ·βᵢ`` (weights are **not** normalized), saved as
  ``{basename}_{desc}.png`` with ``desc = "0_500_3_500"``.

``"[0]"`` and ``"{0: 1.0}"`` give the same numbers: a one-hot mixture selects exactly one style.
Both modes are represented here by mixing vectors of length ``num_styles`` (one-hot rows in list
mode), which is what :func:`nst_tf.networks.pastiche_network` consumes.

Differences from Magenta, all of them errors where Magenta would crash later or silently
misbehave: out-of-range, negative or non-integer indices, NaN/inf weights, empty lists/dicts and
repeated list entries (their outputs would overwrite each other) raise :class:`StyleWeightsError`.
Negative or >1 weights are allowed, as in Magenta (extrapolating between styles).

Example:
    >>> from magenta_compat.which_styles import parse_which_styles
    >>> sel = parse_which_styles("{0: 0.1, 1: 0.1}", num_styles=4)
    >>> sel.mode, sel.output_filenames("out")
    ('mixture', ['out_0_100_1_100.png'])
    >>> sel.vectors.tolist()
    [[0.10000000149011612, 0.10000000149011612, 0.0, 0.0]]
    >>> parse_which_styles("[2, 0]", num_styles=4).output_filenames("out")
    ['out_2.png', 'out_0.png']
"""

import ast
import dataclasses
import math
import numbers

import numpy as np

from nst_tf.errors import StyleWeightsError

LIST_MODE = "list"
MIXTURE_MODE = "mixture"


@dataclasses.dataclass(frozen=True)
class StyleSelection:
    """The parsed ``which_styles`` value.

    Attributes:
        mode: ``"list"`` (one output per style) or ``"mixture"`` (one mixed output).
        vectors: float32 ``[K, num_styles]``; row k conditions output k (one-hot rows in list mode,
            the single un-normalized mixture in mixture mode).
        labels: the file-name suffix of each output (``"3"`` or ``"0_100_1_100"``).
        num_styles: N, the length of each vector.
    """

    mode: str
    vectors: np.ndarray
    labels: tuple
    num_styles: int

    def __len__(self):
        return len(self.labels)

    def output_filenames(self, basename, extension=".png"):
        """Magenta's file names: ``{basename}_{label}{extension}``, one per output."""
        return [f"{basename}_{label}{extension}" for label in self.labels]


def format_weight(weight):
    """Magenta's weight label: ``str(int(round(w * 1000)))`` left-padded with zeros to 3 chars.

    Python's ``round`` (round-half-to-even) is used, exactly as in Magenta.

    >>> format_weight(0.1), format_weight(1.0), format_weight(0.005), format_weight(-0.25)
    ('100', '1000', '005', '-250')
    """
    return str(int(round(weight * 1000.0))).rjust(3, "0")


def describe_mixture(weights):
    """Magenta's mixture description: ``'_'.join('%s_%s' % (k, fmt(w)))`` over sorted keys.

    >>> describe_mixture({1: 0.1, 0: 0.1})
    '0_100_1_100'
    """
    return "_".join(f"{k}_{format_weight(weights[k])}" for k in sorted(weights))


def _literal(text):
    """``ast.literal_eval`` of a flag string, with a clear error for bad syntax."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise StyleWeightsError(
            f"which_styles {text!r} is not a Python literal ({type(e).__name__}: {e}); "
            "expected a list of style indices like '[0, 3]' or a dict of weights like "
            "'{0: 0.5, 3: 0.5}'") from None


def _check_num_styles(num_styles):
    if (isinstance(num_styles, bool) or not isinstance(num_styles, numbers.Integral)
            or num_styles < 1):
        raise StyleWeightsError(f"num_styles must be a positive integer, got {num_styles!r}")
    return int(num_styles)


def check_style_index(index, num_styles, what="style index"):
    """Return ``index`` as an int, or raise :class:`StyleWeightsError` naming it and N."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
        raise StyleWeightsError(f"{what} {index!r} is not an integer; "
                                f"style indices are integers 0..{num_styles - 1}")
    if not 0 <= index < num_styles:
        raise StyleWeightsError(f"{what} {index} is out of range: the model has "
                                f"num_styles={num_styles}, so indices are 0..{num_styles - 1}")
    return int(index)


def check_weight(weight, index):
    """Return ``weight`` as a float, or raise :class:`StyleWeightsError` for NaN/inf/non-numbers."""
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real):
        raise StyleWeightsError(f"weight {weight!r} of style {index} is not a number")
    if not math.isfinite(weight):
        raise StyleWeightsError(f"weight of style {index} is {weight!r}; weights must be finite")
    return float(weight)


def parse_which_styles(value, num_styles):
    """Parse ``which_styles`` (a flag string, or an already-evaluated list / dict).

    Args:
        value: ``"[0, 3]"`` / ``[0, 3]`` (list mode) or ``"{0: 0.5, 3: 0.5}"`` / a dict
            (mixture mode).
        num_styles: N, the number of styles of the network.

    Returns:
        A :class:`StyleSelection`.

    Raises:
        StyleWeightsError: bad syntax, another type, an empty list/dict, a repeated list entry, an
            index that is not an integer in ``0..N-1``, or a NaN/inf weight.
    """
    num_styles = _check_num_styles(num_styles)
    parsed = _literal(value) if isinstance(value, str) else value
    if isinstance(parsed, list):
        if not parsed:
            raise StyleWeightsError("which_styles is an empty list; give at least one style index")
        indices = [check_style_index(i, num_styles) for i in parsed]
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        if repeated:
            raise StyleWeightsError(f"which_styles {parsed!r} lists style(s) {repeated} more than "
                                    "once; their output files would overwrite each other")
        vectors = np.zeros([len(indices), num_styles], np.float32)
        vectors[np.arange(len(indices)), indices] = 1.0
        return StyleSelection(LIST_MODE, vectors, tuple(str(i) for i in indices), num_styles)
    if isinstance(parsed, dict):
        if not parsed:
            raise StyleWeightsError("which_styles is an empty dict; give at least one "
                                    "{style_index: weight} entry")
        weights = {check_style_index(k, num_styles): check_weight(w, k)
                   for k, w in parsed.items()}
        vector = np.zeros([1, num_styles], np.float32)
        for index, weight in weights.items():
            vector[0, index] = weight
        return StyleSelection(MIXTURE_MODE, vector, (describe_mixture(weights),), num_styles)
    raise StyleWeightsError(
        f"which_styles must be a list of style indices (one output per style) or a dict "
        f"{{index: weight}} (one mixed output), got {type(parsed).__name__} {parsed!r}")

"""magenta_compat.which_styles: Magenta's --which_styles parsing and output file names.

The reference for the mixture vector and the file-name description is Magenta's own
``_style_mixture`` and ``_describe_style``, loaded from the installed
``image_stylization_transform.py`` (its module imports skimage, so only those two functions are
compiled from the file's syntax tree).
"""

import ast
import importlib.util
import os

import numpy as np
import pytest

from magenta_compat.which_styles import (describe_mixture, format_weight, parse_which_styles)
from nst_tf.errors import NSTError, StyleWeightsError


@pytest.fixture(scope="module")
def magenta_transform():
    """{"_describe_style": f, "_style_mixture": f} from Magenta's transform script."""
    spec = importlib.util.find_spec("magenta")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("CI"):
            raise ImportError("magenta is not installed")
        pytest.skip("magenta is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models",
                        "image_stylization", "image_stylization_transform.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef)
              and node.name in ("_describe_style", "_style_mixture")]
    namespace = {"np": np}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), namespace)
    return namespace


def test_list_mode_one_hot_rows_and_magenta_names():
    sel = parse_which_styles("[3, 0, 7]", num_styles=8)
    assert sel.mode == "list" and len(sel) == 3
    assert sel.vectors.dtype == np.float32 and sel.vectors.shape == (3, 8)
    np.testing.assert_array_equal(sel.vectors, np.eye(8, dtype=np.float32)[[3, 0, 7]])
    assert sel.output_filenames("photo") == ["photo_3.png", "photo_0.png", "photo_7.png"]
    assert sel.output_filenames("photo", ".jpg")[0] == "photo_3.jpg"


def test_dict_mode_is_one_unnormalized_mixture():
    sel = parse_which_styles("{1: 2.0, 4: 0.25}", num_styles=5)
    assert sel.mode == "mixture" and len(sel) == 1
    np.testing.assert_array_equal(sel.vectors, [[0, 2.0, 0, 0, 0.25]])   # not normalized
    assert sel.output_filenames("out") == ["out_1_2000_4_250.png"]


def test_brief_example_name():
    sel = parse_which_styles("{0:0.1,1:0.1}", num_styles=2)
    assert sel.output_filenames("x") == ["x_0_100_1_100.png"]


def test_parsed_values_are_accepted_like_strings():
    a = parse_which_styles({2: 0.5, 0: 0.5}, 3)
    b = parse_which_styles("{0: 0.5, 2: 0.5}", 3)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.labels == b.labels == ("0_500_2_500",)
    np.testing.assert_array_equal(parse_which_styles([1], 3).vectors, [[0, 1, 0]])


def test_one_style_list_equals_one_hot_dict():
    np.testing.assert_array_equal(parse_which_styles("[0]", 4).vectors,
                                  parse_which_styles("{0: 1.0}", 4).vectors)


def test_format_weight_pads_and_rounds_half_to_even():
    assert format_weight(0.005) == "005"       # 5 -> "005"
    assert format_weight(0.0) == "000"
    assert format_weight(1.5) == "1500"
    assert format_weight(0.0125) == str(int(round(0.0125 * 1000))).rjust(3, "0")
    assert describe_mixture({10: 1.0, 3: 0.25}) == "3_250_10_1000"   # numeric key order


def test_matches_magenta_mixture_and_description(magenta_transform, rng):
    describe = magenta_transform["_describe_style"]
    mixture = magenta_transform["_style_mixture"]
    for _ in range(200):
        n = int(rng.integers(1, 40))
        keys = rng.choice(n, size=int(rng.integers(1, min(n, 6) + 1)), replace=False)
        weights = {int(k): float(np.round(rng.uniform(-1, 2), int(rng.integers(0, 5))))
                   for k in keys}
        text = repr(weights)
        sel = parse_which_styles(text, n)
        assert sel.labels == (describe(weights),)
        np.testing.assert_array_equal(sel.vectors[0], mixture(weights, n))


@pytest.mark.parametrize("text, fragment", [
    ("[0,", "not a Python literal"),
    ("styles", "not a Python literal"),
    ("3", "must be a list"),
    ("(0, 1)", "must be a list"),
    ("'0'", "must be a list"),
    ("[]", "empty list"),
    ("{}", "empty dict"),
    ("[32]", "out of range"),
    ("[-1]", "out of range"),
    ("[1.0]", "not an integer"),
    ("[True]", "not an integer"),
    ("{32: 1.0}", "out of range"),
    ("{'a': 1.0}", "not an integer"),
    ("{0: 'x'}", "not a number"),
    ("{0: 1e999}", "finite"),
    ("{0: None}", "not a number"),
    ("[1, 2, 1]", "more than once"),
])
def test_errors_name_the_problem(text, fragment):
    with pytest.raises(StyleWeightsError, match=fragment) as info:
        parse_which_styles(text, num_styles=32)
    assert isinstance(info.value, NSTError) and isinstance(info.value, ValueError)


def test_out_of_range_message_names_index_and_num_styles():
    with pytest.raises(StyleWeightsError, match=r"12 is out of range.*num_styles=10.*0\.\.9"):
        parse_which_styles("[1, 12]", num_styles=10)


def test_nan_weight_in_a_dict_value():
    with pytest.raises(StyleWeightsError, match="nan"):
        parse_which_styles({0: float("nan")}, num_styles=2)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_bad_num_styles(bad):
    with pytest.raises(StyleWeightsError, match="num_styles"):
        parse_which_styles("[0]", num_styles=bad)

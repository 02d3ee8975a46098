"""One tile geometry (nst_tf.grid) for exact tiled Gatys and feed-forward patches: the grid, the
tile-size rule, and the one message both programs give for the same bad ``--tile_size``."""

import numpy as np
import pytest

from nst_tf import grid as geometry
from nst_tf.errors import ConfigError

from conftest import test_image
from programs import error_line, run_program


@pytest.mark.parametrize("height, width, core, halo, stride, rows, cols", [
    (67, 61, 20, 12, 4, 3, 3),      # remainders 7 and 1 (< halo) join the last cores
    (150, 131, 48, 56, 4, 3, 2),
    (150, 131, 48, 0, 4, 4, 3),     # no halo: every remainder is a core of its own
    (64, 64, 64, 80, 16, 1, 1),     # one tile
    (10, 200, 16, 8, 8, 1, 13),
])
def test_cores_partition_the_image_and_tiles_add_the_clipped_halo(height, width, core, halo,
                                                                 stride, rows, cols):
    grid = geometry.Grid(height, width, core, halo, stride)
    assert (grid.rows, grid.cols, len(grid)) == (rows, cols, rows * cols)
    covered = np.zeros((height, width), int)
    for tile in grid:
        top, bottom, left, right = tile.core
        covered[top:bottom, left:right] += 1
        assert top % core == 0 and left % core == 0            # on the coarsest pixel grid
        assert tile.box == (max(0, top - halo), min(height, bottom + halo),
                            max(0, left - halo), min(width, right + halo))
        assert tile.last_row == (bottom == height) and tile.last_col == (right == width)
        assert bottom - top < core + max(halo, 1) and right - left < core + max(halo, 1)
    assert (covered == 1).all()
    assert len({t.shape for t in grid}) <= 9          # corners, edges, interior
    assert grid.overhead == pytest.approx(sum(h * w for h, w in (t.shape for t in grid))
                                          / (height * width))


@pytest.mark.parametrize("value, stride, message", [
    (0, 4, "tile_size must be a positive whole number of pixels, got 0"),
    (-8, 4, "tile_size must be a positive whole number of pixels, got -8"),
    (True, 4, "tile_size must be a positive whole number of pixels, got True"),
    (24.0, 4, "tile_size must be a positive whole number of pixels, got 24.0"),
    ("64", 4, "tile_size must be a positive whole number of pixels, got '64'"),
    (None, 4, "tile_size must be a positive whole number of pixels, got None"),
    (6, 4, "tile_size=6 is not a multiple of 4, the stride of the network (tiles must start "
           "on its coarsest pixel grid); use 4 or 8"),
    (2, 4, "tile_size=2 is not a multiple of 4, the stride of the network (tiles must start "
           "on its coarsest pixel grid); use 4"),
])
def test_one_rule_and_one_message_for_bad_tile_sizes(value, stride, message):
    with pytest.raises(ConfigError) as error:
        geometry.check_tile_size(value, stride)
    assert str(error.value) == message
    with pytest.raises(ConfigError) as error:        # the same through a grid
        geometry.Grid(100, 100, value, 0, stride)
    assert str(error.value) == message
    assert geometry.check_tile_size(np.int64(48), 16) == 48


@pytest.mark.parametrize("text, words, parsed", [
    ("256", (), 256), (" 64 ", (), 64), ("none", (), None), ("", (), None), (None, (), None),
    ("AUTO", ("auto",), "auto"), (32, (), 32),
])
def test_flag_values_parse(text, words, parsed):
    assert geometry.parse_tile_size(text, words) == parsed


@pytest.mark.parametrize("text", ["24.0", "-8", "0", "abc", "auto", "1e3", "+16", "٣٢"])
def test_bad_flag_values_give_the_rule_s_message(text):
    with pytest.raises(ConfigError) as error:
        geometry.parse_tile_size(text)
    assert str(error.value) == f"tile_size must be a positive whole number of pixels, got {text!r}"


def test_bad_halos():
    for halo in (6, -4, 4.0, True):
        with pytest.raises(ConfigError, match="halo must be a multiple of the network's stride 4"):
            geometry.Grid(100, 100, 16, halo, 4)


# --- The programs, as typed ---------------------------------------------------------------------

BAD = ["24.0", "-8"]     # the value; a negative one (each run starts TensorFlow)


@pytest.mark.slow
def test_nst_stylize_and_nst_transform_refuse_the_same_values_with_the_same_line(tmp_path):
    """Gatys tiles (``nst-stylize``) and feed-forward patches (``nst-transform``) read
    ``--tile_size`` with one rule: the same bad value gives the same one-line message, before any
    model is loaded (the checkpoint named here does not even exist), and writes nothing."""
    content, style = test_image("content_sq.jpg"), test_image("style/doesburg_sq.jpg")
    for value in BAD:
        gatys = run_program("nst-stylize", f"--content={content}", f"--style={style}",
                            f"--output={tmp_path / 'out.png'}", "--weights=random",
                            f"--tile_size={value}", timeout=300)
        patches = run_program("nst-transform", f"--checkpoint={tmp_path / 'missing.ckpt'}",
                              f"--input_image={content}", f"--output_dir={tmp_path / 'out'}",
                              "--output_basename=photo", f"--tile_size={value}", timeout=300)
        message = f"tile_size must be a positive whole number of pixels, got '{value}'"
        assert error_line(gatys, "nst-stylize") == f"nst-stylize: error: {message}"
        assert error_line(patches, "nst-transform") == f"nst-transform: error: {message}"
    assert list(tmp_path.iterdir()) == []

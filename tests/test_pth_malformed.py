"""The safe .pth reader turns every malformed file into a CheckpointError, and the CLIs print it.

Cut points: every byte of a small legacy file and of a small zip file (made by
``tests/pth_files.py``), and a dense sample of the PyTorch-written fixtures. Field types: each
field of the storage and tensor records replaced by values of the wrong type or range. Fuzz:
seeded random byte mutations of both layouts. Anything but a CheckpointError (or a correct load)
is a failure, and so is a load that takes an unbounded amount of memory.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from nst_tf.errors import CheckpointError
from pth_files import legacy_bytes, small_state, write_legacy, write_zip, zip_bytes
from torch_compat.pth import load_pth, read_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "adain")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUTS = {"legacy": legacy_bytes, "zip": zip_bytes}


def _load_outcome(path):
    """``"ok"`` or ``"error"``; any exception other than CheckpointError propagates."""
    try:
        read_state_dict(path)
    except CheckpointError as e:
        assert os.path.basename(path) in str(e), str(e)  # the message names the file
        assert "\n" not in str(e).strip()
        return "error"
    return "ok"


def test_writer_makes_files_the_reader_reads_exactly(tmp_path):
    state = small_state()
    for layout, write in (("legacy", write_legacy), ("zip", write_zip)):
        loaded = read_state_dict(write(tmp_path / f"{layout}.pth", state))
        assert list(loaded) == list(state)
        for name, value in state.items():
            assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
            np.testing.assert_array_equal(loaded[name], value)
    # The PyTorch-written fixture read back and rewritten by the test writer: same tensors.
    decoder = read_state_dict(os.path.join(FIXTURE, "decoder.pth"))
    again = read_state_dict(write_legacy(tmp_path / "again.pth", decoder))
    for name in decoder:
        np.testing.assert_array_equal(decoder[name], again[name])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_truncation_at_every_byte_is_a_checkpoint_error(tmp_path, layout):
    raw = LAYOUTS[layout](small_state())
    path = tmp_path / "cut.pth"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="cut.pth"):
            load_pth(path)


@pytest.mark.parametrize("name", ["decoder.pth", "decoder_zip.pth"])
def test_truncated_pytorch_files_are_checkpoint_errors(tmp_path, name):
    """PyTorch's own files: every byte of the pickles, then every 61st byte of the storages."""
    raw = open(os.path.join(FIXTURE, name), "rb").read()
    path = tmp_path / "cut.pth"
    cuts = list(range(0, 2800, 3)) + list(range(2800, len(raw), 61)) + [300, len(raw) - 1]
    for cut in cuts:
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="cut.pth"):
            load_pth(path)


def _damaged_decoders(folder):
    """The two probes of issue 20 beside a good vgg_normalised.pth: the first 300 bytes of a
    legacy decoder, and a storage record whose element count is not a number."""
    import shutil

    folder.mkdir()
    shutil.copy(os.path.join(FIXTURE, "vgg_normalised.pth"), folder)
    cut = folder / "decoder_cut.pth"
    cut.write_bytes(open(os.path.join(FIXTURE, "decoder.pth"), "rb").read()[:300])
    field = write_legacy(folder / "decoder_numel.pth", small_state(),
                         {"conv.weight": {"numel": "abc"}})
    return [cut, field]


def test_nst_adain_prints_one_line_for_a_damaged_file(tmp_path):
    """The console program (a fresh process started like nst-adain): exit 1, no traceback."""
    from PIL import Image

    content = tmp_path / "c.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(content)
    for decoder in _damaged_decoders(tmp_path / "models"):
        code = ("import sys; from nst_tf.cli.launch import launch; "
                "launch('nst-adain', ['nst-adain'] + sys.argv[1:])")
        result = subprocess.run(
            [sys.executable, "-c", code, f"--content={content}", f"--style={content}",
             f"--vgg={FIXTURE}/vgg_normalised.pth", f"--decoder={decoder}",
             f"--output={tmp_path / 'out'}"],
            capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("nst-adain: error: ") and decoder.name in last, result.stderr
        assert not (tmp_path / "out").exists()


def test_every_cli_taking_a_pth_prints_one_line(tmp_path, capsys):
    """nst-adain --model, nst-transform --checkpoint and nst-video --model with a damaged decoder
    (its vgg_normalised.pth beside it): exit 1 and one error line, nothing written."""
    from PIL import Image

    from nst_tf.cli import adain, transform, video

    content = tmp_path / "c.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(content)
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in (1, 2):
        Image.fromarray(np.full((16, 16, 3), 60 * k, np.uint8)).save(frames / f"f{k}.png")
    out = tmp_path / "out"
    for decoder in _damaged_decoders(tmp_path / "models"):
        runs = {
            "nst-adain": (adain, [f"--content={content}", f"--style={content}",
                                  f"--model={decoder}", f"--output={out}"]),
            "nst-transform": (transform, [f"--checkpoint={decoder}",
                                          f"--input_image={content}",
                                          f"--style_images={content}", f"--output_dir={out}",
                                          "--output_basename=x"]),
            "nst-video": (video, [f"--input={frames}", f"--output={out}", f"--model={decoder}",
                                  f"--style={content}", "--noprogress"]),
        }
        for program, (module, argv) in runs.items():
            capsys.readouterr()
            assert module.main([program, *argv]) == 1, program
            err = capsys.readouterr().err
            assert err.startswith(f"{program}: error: ") and err.count("\n") == 1, err
            assert decoder.name in err, err
            assert not out.exists()


def test_loadable_pth_with_a_scalar_where_a_kernel_belongs(tmp_path):
    """A file that reads fine but holds a scalar for conv1_1's kernel: named, not an IndexError."""
    from torch_compat import adain as torch_adain

    state = read_state_dict(os.path.join(FIXTURE, "vgg_normalised.pth"))
    state["2.weight"] = np.array(1.0, np.float32)
    vgg = write_legacy(tmp_path / "vgg_scalar.pth", state)
    with pytest.raises(CheckpointError, match=r"vgg_scalar.pth: 2.weight has shape \(\)"):
        torch_adain.load_adain(vgg, os.path.join(FIXTURE, "decoder.pth"))


# Wrong types / ranges in each field of the storage record (the persistent id) and the tensor
# record (_rebuild_tensor_v2's arguments).
BAD_FIELDS = [
    ("numel", "abc"), ("numel", 2.5), ("numel", -1), ("numel", None), ("numel", [12]),
    ("numel", 10 ** 30), ("key", 3.5), ("key", None), ("key", ("a",)), ("tag", "tensor"),
    ("type", "FloatStorage"), ("type", None), ("location", 5),
    ("offset", "0"), ("offset", -3), ("offset", None), ("offset", 10 ** 30),
    ("size", "abc"), ("size", None), ("size", (2, "x")), ("size", (-2, 6)), ("size", 12),
    ("size", (2 ** 40, 2 ** 40)), ("stride", None), ("stride", "ab"), ("stride", (6, 2)),
    ("stride", (6, 2, -1, 1)), ("stride", (1.5, 2, 2, 1)), ("stride", (2 ** 62, 2, 2, 1)),
]
LEGACY_ONLY = [("view", "abc"), ("view", (1, 2)), ("view", ("0", "x", 3)),
               ("view", ("0", -1, 3)), ("view", ("0", 10, 3))]


FIELD_CASES = [(layout, field, value) for layout in sorted(LAYOUTS)
               for field, value in BAD_FIELDS + (LEGACY_ONLY if layout == "legacy" else [])]


@pytest.mark.parametrize("layout,field,value", FIELD_CASES,
                         ids=[f"{l}-{f}={v!r:.16}" for l, f, v in FIELD_CASES])
def test_wrong_field_types_are_checkpoint_errors(tmp_path, layout, field, value):
    path = tmp_path / "field.pth"
    path.write_bytes(LAYOUTS[layout](small_state(), {"conv.weight": {field: value}}))
    with pytest.raises(CheckpointError, match="field.pth"):
        load_pth(path)


@pytest.mark.parametrize("count", [-1, 10 ** 15, 2 ** 62, 5])
def test_wrong_legacy_element_counts_are_checkpoint_errors(tmp_path, count):
    path = tmp_path / "count.pth"
    path.write_bytes(legacy_bytes(small_state(), count=count))
    with pytest.raises(CheckpointError, match="count.pth"):
        load_pth(path)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_random_byte_mutations_load_or_raise_checkpoint_error(tmp_path, layout):
    """A seeded fuzz: 1-3 random bytes replaced, 1500 times per layout."""
    raw = LAYOUTS[layout](small_state())
    rng = np.random.default_rng({"legacy": 1, "zip": 2}[layout])
    path = tmp_path / "mutant.pth"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        mutant = bytearray(raw)
        for position in rng.integers(0, len(raw), rng.integers(1, 4)):
            mutant[position] = rng.integers(0, 256)
        path.write_bytes(bytes(mutant))
        outcomes[_load_outcome(str(path))] += 1
    assert outcomes["error"] > 100, outcomes  # the mutations do break files


def test_self_referencing_and_deeply_nested_pickles_are_checkpoint_errors(tmp_path):
    # A list that contains itself: EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP.
    loop = b"\x80\x02]q\x00h\x00a."
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    for name, payload in (("loop.pth", loop), ("deep.pth", deep)):
        path = tmp_path / name
        with open(path, "wb") as f:
            import pickle

            for header in (0x1950a86a20f9469cfc6c, 1001, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(payload)
            pickle.dump([], f, protocol=2)
        with pytest.raises(CheckpointError, match=name):
            load_pth(path)


def test_empty_and_directory_inputs(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth.*empty"):
        load_pth(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_pth(tmp_path)

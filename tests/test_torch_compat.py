"""torch_compat: the safe .pth reader and pytorch-AdaIN's weights, against PyTorch's own outputs.

The fixture (tests/fixtures/adain/, made by make_fixture.py with PyTorch 2.13) holds
pytorch-AdaIN's architecture at 1/16 width with random weights, saved in the legacy format of the
released files (and the decoder also in the zip format), plus what PyTorch computed from it.
"""

import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from nst_tf.errors import CheckpointError, WeightsUnavailableError
from torch_compat import adain as torch_adain
from torch_compat.pth import LEGACY_MAGIC, UnsafeCheckpointError, load_pth, read_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "adain")
VGG = os.path.join(FIXTURE, "vgg_normalised.pth")
DECODER = os.path.join(FIXTURE, "decoder.pth")


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(FIXTURE, "expected.npz")))


@pytest.fixture(scope="module")
def network():
    return torch_adain.load_adain(VGG, DECODER)


# --- The reader ---------------------------------------------------------------------------------

def test_legacy_and_zip_files_hold_the_same_tensors():
    legacy, modern = read_state_dict(DECODER), read_state_dict(os.path.join(FIXTURE,
                                                                             "decoder_zip.pth"))
    assert list(legacy) == list(modern) == [f"{i}.{s}" for i in (1, 5, 8, 11, 14, 18, 21, 25, 28)
                                            for s in ("weight", "bias")]
    for name in legacy:
        assert legacy[name].dtype == np.float32
        np.testing.assert_array_equal(legacy[name], modern[name])
    assert legacy["1.weight"].shape == (16, 32, 3, 3)        # OIHW at 1/16 width


def test_vgg_file_holds_the_whole_published_vgg():
    state = read_state_dict(VGG)
    convs = sorted({int(k.split(".")[0]) for k in state})
    assert convs == [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
    np.testing.assert_allclose(state["0.bias"], [-103.939, -116.779, -123.68], rtol=1e-6)


def _zip_pth(path, payload, root="archive"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{root}/data.pkl", payload)
        z.writestr(f"{root}/version", "3\n")


def _legacy_pth(path, payload):
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(payload)
        pickle.dump([], f, protocol=2)


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("layout", [_zip_pth, _legacy_pth])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, layout):
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps(collections.OrderedDict(
        [("0.weight", _Evil(f"touch {sentinel}"))]), protocol=2)
    # The payload really runs the command under plain pickle (in a child process).
    probe = tmp_path / "probe"
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=pickle.dumps(_Evil(f"touch {probe}"), protocol=2), check=True)
    assert probe.exists()
    path = tmp_path / "evil.pth"
    layout(path, payload)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system") as info:
        load_pth(path)
    assert "nothing was executed" in str(info.value)
    assert not sentinel.exists()
    with pytest.raises(CheckpointError):  # the AdaIN loader refuses it the same way
        torch_adain.load_adain(VGG, path)
    assert not sentinel.exists()


def test_other_globals_are_refused_by_name(tmp_path):
    path = tmp_path / "eval.pth"
    # GLOBAL builtins.eval, then REDUCE: refused at the GLOBAL, before any call.
    payload = b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R."
    _zip_pth(path, payload, root="eval")
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_pth(path)


def test_non_checkpoints_and_old_tar_layout_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_pth(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_pth(junk)
    import tarfile

    old = tmp_path / "old.pth"
    with tarfile.open(old, "w") as t:
        info = tarfile.TarInfo("pickle")
        data = pickle.dumps(1)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(CheckpointError, match="PyTorch < 0.4.*torch.save"):
        load_pth(old)


def test_truncated_legacy_storage_is_an_error(tmp_path):
    raw = open(DECODER, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(raw[:-100])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_pth(cut)
    assert struct.calcsize("<q") == 8


# --- pytorch-AdaIN's network --------------------------------------------------------------------

def test_encoder_matches_pytorch(network, expected):
    features = network.get_layer("encoder")(expected["content"][None])
    for name, value in zip(("relu1_1", "relu2_1", "relu3_1", "relu4_1"), features):
        assert value.shape[1:] == expected[name].shape        # ceil-mode pooling: 37 -> 19 -> 10 -> 5
        np.testing.assert_allclose(value.numpy()[0], expected[name], atol=1e-4,
                                   rtol=0, err_msg=name)


def test_network_matches_pytorch(network, expected):
    out = network([expected["content"][None], expected["style_a"][None]]).numpy()[0]
    assert out.shape == (40, 48, 3) == expected["output"].shape
    assert np.abs(out - expected["output"]).max() <= 1e-4
    assert expected["output"].std() > 0.05   # the comparison is not between near-constant images


def test_zip_decoder_gives_the_same_network(expected):
    net = torch_adain.load_adain(VGG, os.path.join(FIXTURE, "decoder_zip.pth"))
    out = net([expected["content"][None], expected["style_a"][None]]).numpy()[0]
    assert np.abs(out - expected["output"]).max() <= 1e-4


def test_swapped_or_wrong_files_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="decoder.pth has no entry 2.weight"):
        torch_adain.load_adain(DECODER, DECODER)
    with pytest.raises(CheckpointError, match="not found"):
        torch_adain.load_adain(VGG, tmp_path / "nope.pth")
    # A full-size decoder layout against the 1/16 encoder: both shapes are named.
    state = read_state_dict(DECODER)
    from nst_tf.networks import adain_network

    net = adain_network(channel_divisor=8)
    with pytest.raises(CheckpointError, match=r"1.weight has shape \[16, 32, 3, 3\].*\[32, 64, 3, 3\]"):
        torch_adain.load_adain_state(net, decoder_state=state, decoder_source="decoder.pth")


def test_preset_offline_error_names_both_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError) as info:
        torch_adain.adain_files(download=False)
    text = str(info.value)
    assert torch_adain.RELEASE_URL + "vgg_normalised.pth" in text
    assert torch_adain.RELEASE_URL + "decoder.pth" in text
    assert str(tmp_path) in text


def test_preset_uses_cached_files(tmp_path, monkeypatch, expected):
    import shutil

    import nst_tf

    folder = tmp_path / "models" / "adain"
    folder.mkdir(parents=True)
    shutil.copy(VGG, folder / "vgg_normalised.pth")
    shutil.copy(DECODER, folder / "decoder.pth")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = nst_tf.stylize(expected["content"], expected["style_a"], model="adain", style_size=None)
    assert np.abs(out - np.clip(expected["output"], 0, 1)).max() <= 1e-4


def test_reading_a_pth_needs_neither_torch_nor_tensorflow():
    code = ("import sys, torch_compat, nst_tf.models.adain.family; "
            f"s = torch_compat.read_state_dict({DECODER!r}); "
            "print(len(s), 'tensorflow' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split() == ["18", "False", "False"]

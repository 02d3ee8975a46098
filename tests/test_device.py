"""nst_tf.device: precision="auto" takes bfloat16 only where it was measured faster (AMX)."""

import pytest

from nst_tf import device
from nst_tf.errors import ConfigError


def test_cpu_has_amx_reads_the_flags(tmp_path):
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor : 0\nflags : fpu avx512f avx512_bf16 amx_bf16 amx_tile\n")
    without = tmp_path / "no_amx"
    without.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    assert device.cpu_has_amx(str(with_amx))
    assert not device.cpu_has_amx(str(without))
    assert not device.cpu_has_amx(str(tmp_path / "missing"))


@pytest.mark.parametrize("amx, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_follows_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(device, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(device, "has_accelerator", lambda: False)
    assert device.resolve_precision("auto") == expected
    assert device.resolve_precision("float32") == "float32"
    assert device.resolve_precision("bfloat16") == "bfloat16"


def test_unknown_precision_is_named():
    with pytest.raises(ConfigError, match="precision must be one of .*'float16'"):
        device.resolve_precision("float16")

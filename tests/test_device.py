"""nst_tf.device: precision="auto" takes bfloat16 only where it measures faster."""

import pytest

from nst_tf import device
from nst_tf.errors import ConfigError


def test_cpu_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx512f avx512_bf16 amx_bf16\n")
    assert {"avx512_bf16", "amx_bf16"} <= device.cpu_flags(str(info))
    assert device.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize("faster, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_follows_the_measurement(monkeypatch, faster, expected):
    monkeypatch.setattr(device, "bfloat16_is_faster", lambda: faster)
    assert device.resolve_precision("auto") == expected
    assert device.resolve_precision("float32") == "float32"
    assert device.resolve_precision("bfloat16") == "bfloat16"


def test_no_bfloat16_hardware_means_float32_without_measuring(monkeypatch):
    device.bfloat16_is_faster.cache_clear()
    monkeypatch.setattr(device, "has_accelerator", lambda: False)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(device, "_conv_seconds", lambda dtype: pytest.fail("measured"))
    try:
        assert device.bfloat16_is_faster() is False
    finally:
        device.bfloat16_is_faster.cache_clear()


def test_measurement_decides_on_bfloat16_hardware(monkeypatch):
    monkeypatch.setattr(device, "has_accelerator", lambda: False)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512_bf16"})
    for seconds, expected in (({"float32": 2.0, "bfloat16": 1.0}, True),
                              ({"float32": 1.0, "bfloat16": 1.25}, False)):
        device.bfloat16_is_faster.cache_clear()
        monkeypatch.setattr(device, "_conv_seconds", lambda dtype, s=seconds: s[dtype.name])
        assert device.bfloat16_is_faster() is expected
    device.bfloat16_is_faster.cache_clear()


def test_the_real_measurement_runs():
    device.bfloat16_is_faster.cache_clear()
    assert device.bfloat16_is_faster() in (True, False)
    assert device._conv_seconds(device.tf.float32, repeats=1) > 0


def test_unknown_precision_is_named():
    with pytest.raises(ConfigError, match="precision must be one of .*'float16'"):
        device.resolve_precision("float16")

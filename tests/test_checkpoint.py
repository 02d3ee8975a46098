"""magenta_compat.checkpoint without Magenta: formats, paths, errors, atomic writes.

Parity with Magenta's own code is in test_magenta_parity.py.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import magenta_compat
from magenta_compat import checkpoint as ckpt
from nst_tf.errors import CheckpointError
from nst_tf.networks import pastiche_network


@pytest.fixture(scope="module")
def network():
    net = pastiche_network(3, alpha=0.25)
    rng = np.random.default_rng(5)
    for weight in net.weights:
        weight.assign(rng.normal(0, 1, weight.shape).astype(np.float32))
    return net


def save_raw(path, tensors, version="V1"):
    """Write {name: array} with TensorFlow's raw save ops (an independent writer)."""
    names = sorted(tensors)
    data = [tf.constant(tensors[n]) for n in names]
    if version == "V1":
        tf.raw_ops.Save(filename=path, tensor_names=names, data=data)
    else:
        tf.raw_ops.SaveV2(prefix=path, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=data)
    return path


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_write_read_round_trip(tmp_path, network, version):
    path = magenta_compat.write_checkpoint(network, str(tmp_path / "model.ckpt"), version=version,
                                           global_step=42)
    assert path.endswith("model.ckpt-42")
    files = sorted(os.listdir(tmp_path))
    if version == "V1":
        assert files == ["checkpoint", "model.ckpt-42"]
    else:
        assert files == ["checkpoint", "model.ckpt-42.data-00000-of-00001", "model.ckpt-42.index"]
    values = magenta_compat.read_checkpoint(path)
    assert values["global_step"] == 42
    expected = magenta_compat.network_variables(network)
    assert set(values) == set(expected) | {"global_step"}
    for name, value in expected.items():
        np.testing.assert_array_equal(values[name], value)
    assert magenta_compat.infer_pastiche_config(values) == (3, 0.25)
    # Every way of naming the checkpoint loads it.
    names = [path, str(tmp_path)]
    if version == "V2":
        names += [path + ".index", path + ".data-00000-of-00001"]
    for name in names:
        assert_same_weights(magenta_compat.load_pastiche_network(name), network)


def test_write_leaves_no_temporary_files(tmp_path, network):
    magenta_compat.write_checkpoint(network, str(tmp_path), version="V2")
    magenta_compat.write_checkpoint(network, str(tmp_path / "model.ckpt"), version="V1")
    # V1 over a V2 of the same name: the stale bundle is removed, so readers see the V1 file.
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt"]
    assert_same_weights(magenta_compat.load_pastiche_network(str(tmp_path)), network)


def test_write_into_missing_directory(tmp_path, network):
    with pytest.raises(CheckpointError, match="does not exist"):
        magenta_compat.write_checkpoint(network, str(tmp_path / "no" / "model.ckpt"))
    with pytest.raises(ValueError, match="version"):
        magenta_compat.write_checkpoint(network, str(tmp_path / "m"), version="V3")


def test_missing_and_corrupt_files(tmp_path):
    missing = str(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="not found.*nothing.ckpt"):
        magenta_compat.read_checkpoint(missing)
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"this is not an sstable" * 20)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*corrupt.ckpt"):
        magenta_compat.load_pastiche_network(str(corrupt))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in directory .*empty"):
        magenta_compat.read_checkpoint(str(tmp_path / "empty"))


def test_truncated_v2_data_file(tmp_path, network):
    path = magenta_compat.write_checkpoint(network, str(tmp_path / "m"), version="V2")
    data = path + ".data-00000-of-00001"
    with open(data, "r+b") as handle:
        handle.truncate(os.path.getsize(data) // 2)
    with pytest.raises(CheckpointError, match=r"cannot read tensor .* from checkpoint .*m \(truncated"):
        magenta_compat.load_pastiche_network(path)


def test_directory_with_several_checkpoints_and_no_state(tmp_path, network):
    values = magenta_compat.network_variables(network)
    save_raw(str(tmp_path / "a.ckpt"), values)
    save_raw(str(tmp_path / "b.ckpt"), values)
    with pytest.raises(CheckpointError, match="several checkpoints.*a.ckpt.*b.ckpt"):
        magenta_compat.load_pastiche_network(str(tmp_path))
    os.remove(tmp_path / "b.ckpt")
    assert ckpt.resolve_checkpoint_path(str(tmp_path)) == str(tmp_path / "a.ckpt")


def test_missing_unexpected_and_misshaped_are_all_listed(tmp_path, network):
    values = magenta_compat.network_variables(network)
    del values["transformer/residual/residual2/conv1/weights"]
    values["transformer/residual/residual6/conv1/weights"] = np.zeros((3, 3, 32, 32), np.float32)
    values["transformer/expand/conv3/conv/InstanceNorm/beta"] = np.zeros((3, 4), np.float32)
    # Ignored: outside transformer/, and optimizer slots of transformer variables.
    values["global_step"] = np.int64(5)
    values["vgg_16/conv1/conv1_1/weights"] = np.zeros((3, 3, 3, 64), np.float32)
    values["transformer/contract/conv1/weights/Adam"] = np.zeros((9, 9, 3, 8), np.float32)
    values["beta1_power"] = np.float32(0.9)
    path = save_raw(str(tmp_path / "broken.ckpt"), values)
    with pytest.raises(CheckpointError) as info:
        magenta_compat.load_pastiche_network(path)
    message = str(info.value)
    assert path in message
    assert "1 mis-shaped" in message
    assert "transformer/expand/conv3/conv/InstanceNorm/beta: [3, 4] vs [3, 3]" in message
    assert "1 missing" in message and "transformer/residual/residual2/conv1/weights [3, 3, 32, 32]" in message
    assert "1 unexpected" in message and "transformer/residual/residual6/conv1/weights" in message
    for ignored in ("vgg_16", "global_step", "Adam", "beta1_power"):
        assert ignored not in message


def test_not_a_pastiche_checkpoint(tmp_path):
    path = save_raw(str(tmp_path / "other.ckpt"), {"vgg_16/conv1/conv1_1/weights":
                                                   np.zeros((3, 3, 3, 64), np.float32)}, "V2")
    with pytest.raises(CheckpointError, match="not a Magenta image_stylization checkpoint"):
        magenta_compat.load_pastiche_network(path)


def test_expected_shapes_match_network():
    for num_styles, alpha in ((32, 1.0), (10, 0.5)):
        net = pastiche_network(num_styles, alpha=alpha)
        shapes = {n: v.shape for n, v in magenta_compat.network_variables(net).items()}
        assert shapes == ckpt.expected_shapes(num_styles, alpha)
    shapes = ckpt.expected_shapes(32)
    assert shapes["transformer/contract/conv1/weights"] == (9, 9, 3, 32)
    assert shapes["transformer/residual/residual5/conv2/InstanceNorm/gamma"] == (32, 128)
    assert shapes["transformer/expand/conv3/conv/weights"] == (9, 9, 32, 3)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 1_777_024  # "varied"


def test_unknown_name_is_not_a_preset(tmp_path):
    with pytest.raises(CheckpointError, match="not a file, a V2 prefix, a directory, or a preset"):
        magenta_compat.load_pastiche_network("no_such_model")

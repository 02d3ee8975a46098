"""Write small ``torch.save`` files (legacy and zip layouts) without PyTorch, for reader tests.

The pickles are made by Python's own pickler with stand-ins whose ``GLOBAL`` names are then
rewritten to PyTorch's (``torch FloatStorage``, ``torch._utils _rebuild_tensor_v2``), so the bytes
have the structure ``torch.save`` writes (compare ``pickletools.dis`` of the fixtures in
``tests/fixtures/adain``). ``records`` replaces fields of the storage / tensor records, to make
files that are malformed in one chosen place.

Example:
    >>> import numpy as np, tempfile, os
    >>> from torch_compat.pth import read_state_dict
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.pth")
    >>> _ = write_legacy(path, {"w": np.ones((2, 3), np.float32)})
    >>> read_state_dict(path)["w"].shape
    (2, 3)
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
#: NumPy dtype → name of the ``torch.<Name>Storage`` class.
STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage",
                 np.dtype(np.bool_): "BoolStorage"}


def _rebuild_tensor_v2(*args):  # pragma: no cover - only its pickled name is used
    raise AssertionError("stand-in, never called")


# Stand-ins of the storage classes, pickled by reference as ``GLOBAL <this module> FloatStorage``
# and renamed to ``GLOBAL torch FloatStorage`` afterwards.
for _name in STORAGE_NAMES.values():
    globals()[_name] = type(_name, (), {"__module__": __name__})

class _Tensor:
    def __init__(self, pid, offset, size, stride):
        self.pid, self.offset, self.size, self.stride = pid, offset, size, stride

    def __reduce__(self):
        return _rebuild_tensor_v2, (self.pid, self.offset, self.size, self.stride, False,
                                    collections.OrderedDict())


class _Pid:
    """A persistent id (the tuple ``torch.save`` writes for a storage)."""

    def __init__(self, fields):
        self.fields = fields


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.fields if isinstance(obj, _Pid) else None


def _pickle(obj):
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue()
    module = __name__.encode()
    raw = raw.replace(b"c" + module + b"\n_rebuild_tensor_v2\n",
                      b"ctorch._utils\n_rebuild_tensor_v2\n")
    for name in STORAGE_NAMES.values():
        raw = raw.replace(b"c" + module + b"\n" + name.encode() + b"\n",
                          b"ctorch\n" + name.encode() + b"\n")
    return raw


def _records(state, legacy, records):
    """``(object to pickle, [(key, bytes, numel)])`` for ``state``."""
    records = records or {}
    obj = collections.OrderedDict()
    storages = []
    for index, (name, array) in enumerate(state.items()):
        array = np.array(array, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        key = str(index)
        fields = {"tag": "storage", "type": globals()[STORAGE_NAMES[array.dtype]], "key": key, "location": "cpu",
                  "numel": array.size, "view": None, "offset": 0, "size": array.shape,
                  "stride": tuple(s // array.itemsize for s in array.strides)}
        fields.update(records.get(name, {}))
        pid = [fields["tag"], fields["type"], fields["key"], fields["location"], fields["numel"]]
        if legacy:
            pid.append(fields["view"])
        obj[name] = _Tensor(_Pid(tuple(pid)), fields["offset"], fields["size"],
                            fields["stride"])
        storages.append((key, array.astype(array.dtype.newbyteorder("<")).tobytes(), array.size))
    return obj, storages


def legacy_bytes(state, records=None, count=None):
    """The bytes of a legacy ``torch.save`` file of ``{name: array}`` (PyTorch 0.4 - 1.5)."""
    obj, storages = _records(state, True, records)
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    out.write(_pickle(obj))
    pickle.dump([key for key, _, _ in storages], out, protocol=2)
    for key, raw, numel in storages:
        out.write(struct.pack("<q", numel if count is None else count))
        out.write(raw)
    return out.getvalue()


def zip_bytes(state, records=None, root="archive"):
    """The bytes of a zip ``torch.save`` file of ``{name: array}`` (PyTorch >= 1.6)."""
    obj, storages = _records(state, False, records)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(f"{root}/data.pkl", _pickle(obj))
        archive.writestr(f"{root}/byteorder", "little")
        for key, raw, _ in storages:
            archive.writestr(f"{root}/data/{key}", raw)
        archive.writestr(f"{root}/version", "3\n")
    return out.getvalue()


def write_legacy(path, state, records=None, count=None):
    with open(path, "wb") as f:
        f.write(legacy_bytes(state, records, count))
    return path


def write_zip(path, state, records=None, root="archive"):
    with open(path, "wb") as f:
        f.write(zip_bytes(state, records, root))
    return path


def small_state():
    """Three small tensors (float32 kernel, float16 bias, int64 counter) for cut / fuzz tests."""
    rng = np.random.default_rng(0)
    return collections.OrderedDict([
        ("conv.weight", rng.standard_normal((2, 3, 1, 2)).astype(np.float32)),
        ("conv.bias", rng.standard_normal(2).astype(np.float16)),
        ("steps", np.array(7, np.int64)),
    ])

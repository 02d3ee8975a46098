"""Read PyTorch ``.pth`` state dicts into NumPy without PyTorch and without running pickle code.

``torch.save`` writes a pickle in which tensors are ``torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)`` calls whose storages are *persistent ids* pointing at raw little-endian
data stored beside the pickle. Two layouts exist:

* **zip** (PyTorch >= 1.6): ``<root>/data.pkl`` plus one file ``<root>/data/<key>`` per storage
  (``<root>`` is ``archive`` or the file's stem), optionally ``<root>/byteorder``;
* **legacy** (PyTorch 0.4 - 1.5, e.g. the released ``vgg_normalised.pth`` / ``decoder.pth`` of
  pytorch-AdaIN): four pickles in a row (magic number, protocol version 1001, system info, the
  object), a pickled list of storage keys, then each storage as an int64 element count followed by
  its bytes.

Both are read with :class:`RestrictedUnpickler`, whose ``find_class`` resolves **only**
``torch._utils._rebuild_tensor_v2``, ``collections.OrderedDict`` and the ``torch.*Storage`` /
``torch.cuda.*Storage`` classes, each to an inert stand-in defined here. Any other global
(``os.system``, ``builtins.eval``, ``subprocess.Popen``...) raises :class:`UnsafeCheckpointError`
naming it, before anything is called: a malicious ``.pth`` cannot execute code. Tensors come back
as NumPy arrays with PyTorch's shape, strides and dtype (``bfloat16`` as float32).

The very old tar layout (PyTorch < 0.4) is refused with a message saying how to convert it.

Example:
    >>> from torch_compat.pth import read_state_dict
    >>> state = read_state_dict("decoder.pth")             # doctest: +SKIP
    >>> state["1.weight"].shape                            # OIHW, as in PyTorch
    (256, 512, 3, 3)
"""

import collections
import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np

from nst_tf.errors import CheckpointError

#: The magic number and protocol version at the start of a legacy ``torch.save`` file.
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001

#: ``torch.<Name>Storage`` → NumPy dtype (``bfloat16`` is widened to float32 on load).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(CheckpointError):
    """A ``.pth`` whose pickle names a global other than tensors and ordered dicts."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only its name and dtype are kept."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _StorageRef:
    """A storage named by a persistent id; its bytes are attached after unpickling."""

    __slots__ = ("key", "dtype", "numel", "view")

    def __init__(self, key, dtype, numel, view=None):
        self.key, self.dtype, self.numel, self.view = key, dtype, numel, view


class _TensorRef:
    """What ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` denotes, not yet built.

    No ``__dict__`` and no ``__setstate__``: a pickle cannot attach state to it (BUILD fails).
    """

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    """Inert replacement of ``torch._utils._rebuild_tensor_v2`` (requires_grad, hooks and
    metadata are ignored)."""
    if not isinstance(storage, _StorageRef):
        raise UnsafeCheckpointError("a tensor in the pickle does not refer to a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                      tuple(int(s) for s in stride))


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build ordered dicts, tensors and storages, and nothing else.

    ``persistent_load`` turns PyTorch's storage ids (zip: ``('storage', type, key, location,
    numel)``; legacy: the same plus ``view_metadata``) into :class:`_StorageRef` records.
    """

    def __init__(self, file, source="?"):
        super().__init__(file, encoding="utf-8")
        self.source = source
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load: its pickle names the global {module}.{name}, "
            "which is not a tensor, a storage or an OrderedDict. A state-dict .pth never needs "
            "it; the file may be malicious (nothing was executed)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] not in ("storage", b"storage"):
            raise UnsafeCheckpointError(f"{self.source}: unknown persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: storage of unknown type {storage_type!r:.60}")
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, storage_type.dtype, int(numel))
        root = self.storages[key]
        if view is None:
            return root
        view_key, offset, size = view
        return _StorageRef(root.key, root.dtype, int(size), view=int(offset))


def _array_from_bytes(raw, dtype, count, source, key, big_endian=False):
    if dtype == "bfloat16":
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2", count=count)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    if len(raw) < count * dt.itemsize:
        raise CheckpointError(f"{source}: storage {key} holds {len(raw)} bytes, "
                              f"{count * dt.itemsize} are needed (truncated file?)")
    return np.frombuffer(raw, dtype=dt, count=count).astype(np.dtype(dtype).newbyteorder("="))


def _materialize(obj, data, source):
    """Replace every :class:`_TensorRef` in ``obj`` (nested dicts / lists) by a NumPy array."""
    if isinstance(obj, _TensorRef):
        flat = data[obj.storage.key]
        start = obj.offset + (obj.storage.view or 0)
        if not obj.size:
            return np.array(flat[start], copy=True)
        extent = 1 + sum((n - 1) * s for n, s in zip(obj.size, obj.stride) if n > 0)
        if any(n == 0 for n in obj.size):
            return np.zeros(obj.size, flat.dtype)
        if start < 0 or start + extent > flat.size or any(s < 0 for s in obj.stride):
            raise CheckpointError(f"{source}: a tensor of shape {obj.size} reaches outside its "
                                  f"storage {obj.storage.key} ({flat.size} elements)")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[start:], shape=obj.size,
                                               strides=[s * item for s in obj.stride])
        return np.array(view, copy=True)
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialize(v, data, source)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, data, source) for v in obj)
    return obj


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint "
                                  "(no <root>/data.pkl inside)")
        root = pickles[0][:-len("data.pkl")]
        big_endian = False
        if root + "byteorder" in names:
            big_endian = archive.read(root + "byteorder").strip() == b"big"
        unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), source=path)
        result = unpickler.load()
        data = {}
        for key, ref in unpickler.storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise CheckpointError(f"{path}: storage {member} is missing from the archive")
            data[key] = _array_from_bytes(archive.read(member), ref.dtype, ref.numel, path, key,
                                          big_endian)
    return result, data


def _load_legacy(path):
    with open(path, "rb") as f:
        def header():
            return RestrictedUnpickler(f, source=path).load()

        try:
            magic = header()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path} is neither a PyTorch zip checkpoint nor a legacy "
                                  f"torch.save file ({type(e).__name__}: {e})") from None
        if magic != LEGACY_MAGIC:
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (no torch.save magic "
                                  "number)")
        protocol = header()
        if protocol != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: unsupported legacy torch.save protocol {protocol!r} "
                                  f"(expected {LEGACY_PROTOCOL})")
        info = header()
        big_endian = isinstance(info, dict) and info.get("little_endian") is False
        unpickler = RestrictedUnpickler(f, source=path)
        result = unpickler.load()
        keys = header()
        if not isinstance(keys, list):
            raise CheckpointError(f"{path}: malformed legacy checkpoint (no storage key list)")
        data = {}
        for key in keys:
            key = key.decode() if isinstance(key, bytes) else str(key)
            ref = unpickler.storages.get(key)
            if ref is None:
                raise CheckpointError(f"{path}: storage {key} is listed but never used")
            head = f.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{path}: truncated before storage {key}")
            count = struct.unpack(">q" if big_endian else "<q", head)[0]
            itemsize = 2 if ref.dtype == "bfloat16" else np.dtype(ref.dtype).itemsize
            data[key] = _array_from_bytes(f.read(count * itemsize), ref.dtype, count, path, key,
                                          big_endian)
    return result, data


def load_pth(path):
    """Everything a ``torch.save`` file holds, with tensors as NumPy arrays.

    Only ordered dicts, dicts, lists, tuples, numbers, strings and tensors can appear; anything
    else is refused (:class:`UnsafeCheckpointError`) without being executed.

    Raises:
        CheckpointError: missing, truncated or non-PyTorch file; the pre-0.4 tar layout.
        UnsafeCheckpointError: the pickle names another global (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"PyTorch checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        result, data = _load_zip(path)
    elif tarfile.is_tarfile(path):
        raise CheckpointError(
            f"{path} uses the tar layout of PyTorch < 0.4, which this reader does not support; "
            "convert it once with any PyTorch: torch.save(torch.load(path), new_path)")
    else:
        result, data = _load_legacy(path)
    return _materialize(result, data, path)


def read_state_dict(path):
    """``{name: np.ndarray}`` of a ``.pth`` holding a state dict (``torch.save(m.state_dict())``,
    or a dict with a ``"state_dict"`` entry); tensors keep PyTorch's layout (OIHW kernels).

    Raises:
        CheckpointError: not a dict of tensors; see :func:`load_pth` for the rest.
    """
    path = os.fspath(path)
    obj = load_pth(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    state = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, not a "
                                  "tensor; expected a state dict")
        state[str(name)] = value
    return state

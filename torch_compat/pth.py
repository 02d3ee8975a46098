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

A damaged file (cut at any byte, a record field of the wrong type, sizes that do not add up, a
length field claiming more bytes than the file holds) is one :class:`CheckpointError` naming the
file: each record is checked, reads are bounded by the file's size, and :func:`load_pth` turns
whatever error the pickle machine raises on bad bytes into that error.

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


#: Deepest nesting of dicts / lists / tuples accepted around the tensors (a state dict has 1-3).
MAX_DEPTH = 100


class UnsafeCheckpointError(CheckpointError):
    """A ``.pth`` whose pickle names a global other than tensors and ordered dicts."""


class _Malformed(Exception):
    """A record of the file that is not what ``torch.save`` writes; :func:`load_pth` adds the
    file name and raises it as a :class:`CheckpointError`."""


def _what(value):
    """A short description of a value read from the file, for messages (never a long repr)."""
    if isinstance(value, (int, float, str, bytes)) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


def _count(value, what):
    """``value`` as a non-negative int (a size, offset, count); _Malformed otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{what} is {_what(value)}, not a non-negative integer")
    return value


def _counts(values, what):
    if not isinstance(values, (tuple, list)):
        raise _Malformed(f"{what} is {_what(values)}, not a tuple of integers")
    return tuple(_count(v, f"an entry of {what}") for v in values)


def _key(value, what="a storage key"):
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _Malformed(f"{what} is not text") from None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Malformed(f"{what} is {_what(value)}, not a name")


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only its name and dtype are kept."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _StorageRef:
    """A storage named by a persistent id; its bytes are attached after unpickling."""

    __slots__ = ("key", "type", "numel", "view")

    def __init__(self, key, storage_type, numel, view=None):
        self.key, self.type, self.numel, self.view = key, storage_type, numel, view


class _TensorRef:
    """What ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` denotes, not yet built.

    No ``__dict__`` and no ``__setstate__``: a pickle cannot attach state to it (BUILD fails).
    """

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor_v2(storage=None, storage_offset=None, size=None, stride=None, *unused):
    """Inert replacement of ``torch._utils._rebuild_tensor_v2`` (requires_grad, hooks and
    metadata are ignored); every argument is checked."""
    if not isinstance(storage, _StorageRef):
        raise UnsafeCheckpointError("a tensor in the pickle does not refer to a storage")
    size = _counts(size, "a tensor's size")
    stride = _counts(stride, "a tensor's stride")
    if len(stride) != len(size):
        raise _Malformed(f"a tensor has size {size} but stride {stride}")
    return _TensorRef(storage, _count(storage_offset, "a tensor's storage offset"), size, stride)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build ordered dicts, tensors and storages, and nothing else.

    ``persistent_load`` turns PyTorch's storage ids (zip: ``('storage', type, key, location,
    numel)``; legacy: the same plus ``view_metadata``) into :class:`_StorageRef` records, checking
    each field.
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
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) \
                or pid[0] not in ("storage", b"storage"):
            raise UnsafeCheckpointError(f"{self.source}: unknown persistent id ({_what(pid)})")
        storage_type, key, location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: storage of unknown type "
                                        f"{_what(storage_type)}")
        key = _key(key)
        if not isinstance(location, (str, bytes)):
            raise _Malformed(f"the location of storage {key} is {_what(location)}, not a "
                             "device name")
        numel = _count(numel, f"the size of storage {key}")
        root = self.storages.setdefault(key, _StorageRef(key, storage_type, numel))
        if root.type is not storage_type and root.type.name != storage_type.name:
            raise _Malformed(f"storage {key} is named with two types")
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise _Malformed(f"the view of storage {key} is {_what(view)}, not (key, offset, "
                             "size)")
        _key(view[0], f"the view key of storage {key}")
        offset = _count(view[1], f"the view offset in storage {key}")
        size = _count(view[2], f"the view size in storage {key}")
        if offset + size > root.numel:
            raise _Malformed(f"a view of {size} elements at {offset} reaches outside storage "
                             f"{key} ({root.numel} elements)")
        return _StorageRef(root.key, root.type, size, view=offset)


def _array_from_bytes(raw, storage_type, count, key, big_endian=False):
    """``count`` elements of ``storage_type`` from the buffer ``raw`` (native byte order)."""
    needed = count * storage_type.itemsize
    if len(raw) < needed:
        raise _Malformed(f"storage {key} holds {len(raw)} bytes, {needed} are needed "
                         "(truncated file?)")
    if storage_type.dtype == "bfloat16":
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2", count=count)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(storage_type.dtype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dt, count=count).astype(dt.newbyteorder("="))


def _tensor(ref, data):
    """The NumPy array a :class:`_TensorRef` denotes (a copy, in PyTorch's shape and dtype)."""
    flat = data.get(ref.storage.key)
    if flat is None:
        raise _Malformed(f"storage {ref.storage.key} is used but its data is missing")
    start = ref.offset + (ref.storage.view or 0)
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, flat.dtype)
    extent = 1 + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if start + extent > flat.size:
        raise _Malformed(f"a tensor of shape {ref.size} at offset {start} reaches outside its "
                         f"storage {ref.storage.key} ({flat.size} elements)")
    view = np.lib.stride_tricks.as_strided(flat[start:], shape=ref.size,
                                           strides=[s * flat.itemsize for s in ref.stride])
    return np.array(view, copy=True)


def _materialize(obj, data, built=None, depth=0):
    """Replace every :class:`_TensorRef` in ``obj`` (nested dicts / lists) by a NumPy array;
    a tensor record used several times gives one array."""
    built = {} if built is None else built
    if depth > MAX_DEPTH:
        raise _Malformed(f"objects nested more than {MAX_DEPTH} deep (or containing themselves)")
    if isinstance(obj, _TensorRef):
        if id(obj) not in built:
            built[id(obj)] = (obj, _tensor(obj, data))
        return built[id(obj)][1]
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialize(v, data, built, depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, data, built, depth + 1) for v in obj)
    if isinstance(obj, (_StorageType, _StorageRef)):
        raise _Malformed(f"a {type(obj).__name__[1:]} appears outside a tensor")
    return obj


class _Bounded:
    """A file as the unpickler reads it, where ``read(n)`` never asks for more than the file
    still holds: a damaged length field cannot make it allocate gigabytes."""

    def __init__(self, file, size):
        self.file, self.size = file, size

    def left(self):
        return self.size - self.file.tell()

    def read(self, n=-1):
        left = self.left()
        return self.file.read(left if n is None or n < 0 else min(n, left))

    def readline(self, *unused):
        return self.file.readline(max(self.left(), 0))


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
            with archive.open(root + "byteorder") as f:
                big_endian = f.read(16).strip() == b"big"
        with archive.open(pickles[0]) as f:
            unpickler = RestrictedUnpickler(f, source=path)
            result = unpickler.load()
        data = {}
        for key, ref in unpickler.storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise _Malformed(f"storage {member} is missing from the archive")
            needed = ref.numel * ref.type.itemsize
            if archive.getinfo(member).file_size < needed:
                raise _Malformed(f"storage {key} holds {archive.getinfo(member).file_size} "
                                 f"bytes, {needed} are needed (truncated file?)")
            with archive.open(member) as f:
                data[key] = _array_from_bytes(f.read(needed), ref.type, ref.numel, key,
                                              big_endian)
    return result, data


def _load_legacy(path):
    with open(path, "rb") as raw:
        f = _Bounded(raw, os.fstat(raw.fileno()).st_size)
        if f.size == 0:
            raise CheckpointError(f"{path} is empty, not a PyTorch checkpoint")

        def header():
            return RestrictedUnpickler(f, source=path).load()

        try:
            magic = header()
        except (pickle.UnpicklingError, EOFError, ValueError, _Malformed) as e:
            raise CheckpointError(f"{path} is neither a PyTorch zip checkpoint nor a legacy "
                                  f"torch.save file ({type(e).__name__}: {e})") from None
        if isinstance(magic, bool) or magic != LEGACY_MAGIC:
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (no torch.save magic "
                                  "number)")
        protocol = header()
        if isinstance(protocol, bool) or protocol != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: unsupported legacy torch.save protocol "
                                  f"{_what(protocol)} (expected {LEGACY_PROTOCOL})")
        info = header()
        big_endian = isinstance(info, dict) and info.get("little_endian") is False
        unpickler = RestrictedUnpickler(f, source=path)
        result = unpickler.load()
        keys = header()
        if not isinstance(keys, list):
            raise _Malformed("no storage key list after the pickled object")
        data = {}
        for key in keys:
            key = _key(key)
            ref = unpickler.storages.get(key)
            if ref is None:
                raise _Malformed(f"storage {key} is listed but never used")
            head = f.read(8)
            if len(head) != 8:
                raise _Malformed(f"truncated before storage {key}")
            count = struct.unpack(">q" if big_endian else "<q", head)[0]
            if count != ref.numel:
                raise _Malformed(f"storage {key} has {count} elements in the data but "
                                 f"{ref.numel} in the pickle")
            if count * ref.type.itemsize > f.left():
                raise _Malformed(f"storage {key} claims {count} elements of "
                                 f"{ref.type.itemsize} bytes, {f.left()} bytes are left "
                                 "(truncated file?)")
            data[key] = _array_from_bytes(f.read(count * ref.type.itemsize), ref.type, count,
                                          key, big_endian)
    return result, data


def _load(path):
    if zipfile.is_zipfile(path):
        result, data = _load_zip(path)
    elif tarfile.is_tarfile(path):
        raise CheckpointError(
            f"{path} uses the tar layout of PyTorch < 0.4, which this reader does not support; "
            "convert it once with any PyTorch: torch.save(torch.load(path), new_path)")
    else:
        result, data = _load_legacy(path)
    return _materialize(result, data)


def load_pth(path):
    """Everything a ``torch.save`` file holds, with tensors as NumPy arrays.

    Only ordered dicts, dicts, lists, tuples, numbers, strings and tensors can appear; anything
    else is refused (:class:`UnsafeCheckpointError`) without being executed. Every other way a
    file can be damaged (cut at any byte, a field of the wrong type, sizes that do not add up)
    is a :class:`~nst_tf.errors.CheckpointError` naming the file.

    Raises:
        CheckpointError: missing, unreadable, truncated, damaged or non-PyTorch file; the pre-0.4
            tar layout.
        UnsafeCheckpointError: the pickle names another global (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"PyTorch checkpoint not found: {path}")
    try:
        return _load(path)
    except CheckpointError:
        raise
    except _Malformed as e:
        raise CheckpointError(f"{path}: damaged PyTorch checkpoint: {e}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - the pickle machine's own errors on damaged bytes
        # (EOFError, UnpicklingError, ValueError, TypeError, KeyError, MemoryError, BadZipFile,
        # zlib.error, ...): whatever the bytes are, the caller gets one CheckpointError.
        detail = " ".join(str(e).split())[:120]
        raise CheckpointError(f"{path}: damaged or truncated PyTorch checkpoint "
                              f"({type(e).__name__}{': ' + detail if detail else ''})") from None


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

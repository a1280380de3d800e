"""Read a PyTorch state dict (``torch.save(model.state_dict(), f)``) without PyTorch and without running it.

A ``.pth`` file is a Python pickle, and unpickling an arbitrary pickle runs
whatever functions it names: loading someone's weights with plain ``pickle``
(or ``torch.load`` before ``weights_only``) hands them your machine. This
reader lets a pickle name exactly what a state dict needs and nothing else:

* ``collections.OrderedDict`` (the state dict itself and an empty hook dict),
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, answered by
  our own functions that cut a numpy array out of a storage,
* the storage types (``torch.FloatStorage`` ...), answered by numpy dtypes;

lists, tuples, dicts, strings and numbers need no name. Any other name is
refused with a ``ColorkitError`` that says which one, before anything runs.

Two layouts exist. Since PyTorch 1.6 the file is a zip archive: ``*/data.pkl``
holds the pickle, ``*/data/<key>`` each storage's raw bytes (the zip's CRC
catches a damaged member). Older files (and ``_use_new_zipfile_serialization=False``)
are several pickles in a row (a magic number, a protocol version, a system
description, the state dict, the list of storage keys) followed by each
storage as an int64 element count and its raw bytes.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from colorkit.errors import ColorkitError

#: The legacy format's first pickle: this number (PyTorch's ``MAGIC_NUMBER``) and protocol 1001.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

#: The first bytes of a zip archive (a local file header).
ZIP_SIGNATURE = b"PK\x03\x04"
#: PyTorch storage type -> numpy element type (byte order is set per file).
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "b1",
}


class StorageType(NamedTuple):
    """What the reader gives for a name like ``torch.FloatStorage``: its element type."""

    dtype: np.dtype


class TensorRef(NamedTuple):
    """A tensor as the pickle describes it: a window onto a storage, read once the storages are."""

    key: str  # the storage's key
    offset: int  # in elements
    shape: tuple
    strides: tuple  # in elements


class _StorageId(NamedTuple):
    key: str
    dtype: np.dtype
    count: int  # elements


def _rebuild_tensor(storage: _StorageId, offset, shape, strides, requires_grad=False, hooks=None, metadata=None):
    """Our answer to ``torch._utils._rebuild_tensor_v2``: remember the window, read nothing yet."""
    if not isinstance(storage, _StorageId):
        raise ColorkitError("a tensor does not point at a storage")
    return TensorRef(storage.key, offset, tuple(shape), tuple(strides))


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    """Our answer to ``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): StorageType(np.dtype(code)) for name, code in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows only the names in ``_ALLOWED`` and records the storages it meets."""

    def __init__(self, file, source: str, byteorder: str):
        super().__init__(file)
        self.source, self.byteorder = source, byteorder
        self.storages: dict[str, _StorageId] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ColorkitError(
                f"{self.source} names {module}.{name}, which a file of weights has no use for; "
                "it was not loaded (only tensors and plain containers are read)"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[4], int)):
            raise ColorkitError(f"{self.source} refers to data of a kind a state dict does not hold: {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise ColorkitError(f"{self.source} uses storage views (PyTorch before 1.0); "
                                "re-save it with a newer PyTorch")
        storage = _StorageId(str(pid[2]), pid[1].dtype.newbyteorder(self.byteorder), pid[4])
        self.storages[storage.key] = storage
        return storage


# --- Reading a file ------------------------------------------------------------------------------------


def read_state_dict(path) -> dict[str, np.ndarray]:
    """The tensors of the state dict saved at ``path``, in its order, as numpy arrays.

    Anything that is not a readable state dict (another kind of file, a
    truncated or damaged one, a pickle naming anything but tensors and plain
    containers) raises ``ColorkitError`` with one line saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ColorkitError(f"no weights file at {path}")
    try:
        with open(path, "rb") as file:
            is_zip = zipfile.is_zipfile(file)
            file.seek(0)  # is_zipfile read the end of the file
            state, storages = (_read_zip if is_zip else _read_legacy)(file, str(path))
        return _tensors(state, storages, str(path))
    except ColorkitError:
        raise
    except zipfile.BadZipFile as error:
        raise ColorkitError(f"{path} is a damaged zip archive ({error})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, OSError) as error:
        raise ColorkitError(f"{path} is not a readable PyTorch state dict (damaged or truncated?): "
                            f"{type(error).__name__}: {error}") from None


def _read_zip(file, source: str):
    """The state dict and its storages' bytes from the zip layout (PyTorch >= 1.6)."""
    archive = zipfile.ZipFile(file)
    pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise ColorkitError(f"{source} is a zip archive but not a PyTorch file (no single */data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if f"{prefix}byteorder" in archive.namelist():
        byteorder = archive.read(f"{prefix}byteorder").decode("ascii", errors="replace").strip()
        if byteorder not in ("little", "big"):
            raise ColorkitError(f"{source} gives an unknown byte order {byteorder!r}")
    with archive.open(pickles[0]) as pickled:
        unpickler = _RestrictedUnpickler(pickled, source, "<" if byteorder == "little" else ">")
        state = unpickler.load()
    storages = {}
    for key, storage in unpickler.storages.items():
        member = f"{prefix}data/{key}"
        if member not in archive.namelist():
            raise ColorkitError(f"{source} lacks the data of storage {key}")
        storages[key] = _storage_array(archive.read(member), storage, source)
    return state, storages


def _read_legacy(file, source: str):
    """The state dict and its storages from the layout before PyTorch 1.6 (pickles, then raw bytes)."""

    def next_pickle(byteorder="<"):
        unpickler = _RestrictedUnpickler(file, source, byteorder)
        return unpickler.load(), unpickler

    if file.read(4) == ZIP_SIGNATURE:
        raise ColorkitError(f"{source} is a damaged zip archive (truncated?): its directory is missing")
    file.seek(0)
    try:
        magic, _ = next_pickle()
    except pickle.UnpicklingError:
        magic = None
    if magic != LEGACY_MAGIC:
        raise ColorkitError(f"{source} is not a PyTorch weights file (neither a zip archive nor the legacy format)")
    protocol, _ = next_pickle()
    if protocol != LEGACY_PROTOCOL:
        raise ColorkitError(f"{source} uses PyTorch file protocol {protocol!r}; only {LEGACY_PROTOCOL} is known")
    system, _ = next_pickle()
    byteorder = "<" if not isinstance(system, dict) or system.get("little_endian", True) else ">"
    state, unpickler = next_pickle(byteorder)
    keys, _ = next_pickle()
    if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
        raise ColorkitError(f"{source}: the list of storages does not match the tensors that use them")
    storages = {}
    for key in map(str, keys):
        storage = unpickler.storages[key]
        (count,) = struct.unpack(f"{byteorder}q", _read_exactly(file, 8, source))
        if count != storage.count:
            raise ColorkitError(f"{source}: storage {key} should hold {storage.count} values, its header says {count}")
        storages[key] = _storage_array(_read_exactly(file, count * storage.dtype.itemsize, source), storage, source)
    return state, storages


def _read_exactly(file, size: int, source: str) -> bytes:
    """The next ``size`` bytes; a file too short for them (checked before reading,
    so a damaged count cannot ask for terabytes) is truncated."""
    if size > os.fstat(file.fileno()).st_size - file.tell():
        raise ColorkitError(f"{source} ends early: it is truncated")
    return file.read(size)


def _storage_array(data: bytes, storage: _StorageId, source: str) -> np.ndarray:
    """The raw bytes of one storage as a flat array of its element type."""
    if len(data) != storage.count * storage.dtype.itemsize:
        raise ColorkitError(f"{source}: storage {storage.key} holds {len(data)} bytes, "
                            f"not the {storage.count} values of {storage.dtype.itemsize} bytes it should")
    return np.frombuffer(data, storage.dtype)


def _tensors(state, storages: dict, source: str) -> dict[str, np.ndarray]:
    """The state dict with every tensor read out of its storage."""
    if not isinstance(state, dict) or not all(isinstance(value, TensorRef) for value in state.values()):
        raise ColorkitError(f"{source} does not hold a state dict (a mapping from names to tensors)")
    return {str(name): _tensor(ref, storages[ref.key], f"{source}: tensor {name}") for name, ref in state.items()}


def _tensor(ref: TensorRef, storage: np.ndarray, what: str) -> np.ndarray:
    """A copy of the window ``ref`` describes, after checking it lies inside ``storage``."""
    numbers = (ref.offset, *ref.shape, *ref.strides)
    if (len(ref.shape) != len(ref.strides) or not all(isinstance(n, int) and n >= 0 for n in numbers)):
        raise ColorkitError(f"{what} has an impossible shape {ref.shape}, strides {ref.strides} or offset {ref.offset}")
    if 0 in ref.shape:
        return np.zeros(ref.shape, storage.dtype.newbyteorder("="))
    last = ref.offset + sum((size - 1) * stride for size, stride in zip(ref.shape, ref.strides))
    if last >= len(storage):
        raise ColorkitError(f"{what} reaches past the end of its storage: the file is damaged")
    window = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], ref.shape, [stride * storage.itemsize for stride in ref.strides], writeable=False
    )
    return np.array(window, storage.dtype.newbyteorder("="), order="C")  # a copy in native byte order

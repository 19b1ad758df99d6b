"""A user's pretrained weights file -> {state_dict key: float32 numpy array}, without torch.

Reads PyTorch `.pth`/`.pt` state_dicts (the zip format of torch >= 1.6 and the legacy format of
older releases, e.g. torchvision's `vgg19-dcbb9e9d.pth`), `.safetensors` and `.npz`. A `.pth`
file is a pickle: it is read by a restricted unpickler that resolves only the handful of globals
a plain state_dict of tensors uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor*`,
the `torch.*Storage` types) to local numpy stand-ins, so no code from the file runs and torch is
not needed (a TPU VM need not have it). Anything else in the pickle (a whole pickled module,
an optimizer, a custom class) is refused with a message naming the file.
"""

from __future__ import annotations

import collections
import pathlib
import pickle
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

SUFFIXES = (".pth", ".pt", ".safetensors", ".npz")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage type name -> numpy dtype of its elements (bfloat16 is read as its uint16 bits).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsFileError(ValueError):
    """A weights file that cannot be read; the caller wraps it into its own error type."""


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage's raw bytes, read lazily (zip) or up front (legacy)."""

    def __init__(self, kind: _StorageType, numel: int, data: bytes | None = None):
        self.kind, self.numel, self.data = kind, numel, data

    def array(self) -> np.ndarray:
        flat = np.frombuffer(self.data, dtype=self.kind.dtype.newbyteorder("<"), count=self.numel)
        if self.kind.name == "BFloat16Storage":
            return (flat.astype(np.uint32) << 16).view(np.float32)
        return flat


class _Tensor:
    """A tensor of the pickle; its storage's bytes may arrive after the pickle (legacy)."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        flat = self.storage.array()
        if 0 in self.size:
            return np.zeros(self.size, flat.dtype)
        # as_strided does not check bounds: a damaged file must not read past its storage.
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride, strict=True))
        if min(self.stride, default=0) < 0 or min(self.size, default=1) < 1 or last >= flat.size:
            raise ValueError(f"tensor {self.size} at {self.offset} exceeds its storage")
        if not self.size:
            return np.array(flat[self.offset])
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=tuple(self.size),
            strides=tuple(s * flat.dtype.itemsize for s in self.stride),
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *_: Any) -> _Tensor:
    """torch._utils._rebuild_tensor(_v2)(storage, offset, size, stride, ...)."""
    if not isinstance(storage, _Storage):
        raise WeightsFileError(f"a tensor is built from {type(storage).__name__}, not a storage")
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _Tensor, *_: Any) -> _Tensor:
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only `_GLOBALS`; storages come from `load_storage(persistent id)`."""

    def __init__(self, file: BinaryIO, source: str, load_storage: Callable[[tuple], _Storage]):
        super().__init__(file)
        self._source, self._load_storage = source, load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise WeightsFileError(
                f"{self._source} is not a plain state_dict of tensors: its pickle refers to "
                f"{module}.{name}, which is not loaded (no code from the file is run)"
            )
        if module == "torch":  # a fresh object per file: a pickle may BUILD on what it gets
            return _StorageType(name)
        return _GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise WeightsFileError(
                f"{self._source} is not a plain state_dict of tensors (persistent object "
                f"{str(pid)[:60]})"
            )
        if not isinstance(pid[1], _StorageType):
            raise WeightsFileError(f"{self._source}: unsupported storage {pid[1]!r}")
        return self._load_storage(pid)


def _read_zip(path: pathlib.Path) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise WeightsFileError(f"{path} is a zip file without a PyTorch data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and z.read(f"{prefix}byteorder").strip() != b"little":
            raise WeightsFileError(f"{path} stores big-endian tensors; save it little-endian")

        def load(pid: tuple) -> _Storage:
            kind, key, _location, numel = pid[1:5]
            return _Storage(kind, int(numel), z.read(f"{prefix}data/{key}"))

        with z.open(pkl[0]) as f:
            return _Unpickler(f, str(path), load).load()


def _read_legacy(path: pathlib.Path) -> Any:
    """torch < 1.6's format: magic, protocol, system info, the object, storage keys, storages."""
    storages: dict[str, _Storage] = {}

    def load(pid: tuple) -> _Storage:
        kind, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsFileError(f"{path}: storage views (legacy torch < 0.4) are not supported")
        return storages.setdefault(str(key), _Storage(kind, int(numel)))

    with open(path, "rb") as f:
        header = [pickle.load(f) for _ in range(3)]  # plain ints and a dict: no globals
        if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
            raise WeightsFileError(f"{path} is not a PyTorch file (no zip, no legacy header)")
        if not header[2].get("little_endian", True):
            raise WeightsFileError(f"{path} stores big-endian tensors; save it little-endian")
        obj = _Unpickler(f, str(path), load).load()
        keys = pickle.load(f)
        for key in keys:
            storage = storages[str(key)]
            size = f.read(8)
            nbytes = storage.numel * storage.kind.dtype.itemsize
            if len(size) == 8 and int(np.frombuffer(size, "<i8")[0]) == storage.numel:
                storage.data = f.read(nbytes)
            if storage.data is None or len(storage.data) != nbytes:
                raise WeightsFileError(f"{path} is truncated or damaged (storage {key})")
    return obj


def _read_pth(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """A PyTorch state_dict file (zip or legacy) -> {key: array}, without torch or code
    execution; WeightsFileError for anything but a (possibly nested under "state_dict")
    mapping of tensors."""
    path = pathlib.Path(path)
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except WeightsFileError:
        raise
    except Exception as e:  # pickle, zip and struct errors of a damaged file
        raise WeightsFileError(f"{path} is not a readable PyTorch state_dict ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, _Tensor) for v in obj.values()):
        raise WeightsFileError(f"{path} holds a {type(obj).__name__}, not a state_dict of tensors")
    try:
        return {str(k): v.array() for k, v in obj.items()}
    except (TypeError, ValueError) as e:  # a storage shorter than its tensors
        raise WeightsFileError(f"{path} is not a readable PyTorch state_dict ({e})") from e


def read_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Weights file (.pth/.pt, .safetensors, .npz) -> {key: float32 array}; WeightsFileError
    (naming the file and what is wrong) for a missing, unknown or unreadable one."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path} does not exist (nothing is downloaded)")
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):
        tensors = _read_pth(path)
    elif suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(path))
        except Exception as e:  # safetensors raises its own types for a corrupt header
            raise WeightsFileError(f"{path} is not a readable safetensors file ({e})") from e
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                tensors = {k: f[k] for k in f.files}
        except Exception as e:  # zip errors, object arrays
            raise WeightsFileError(f"{path} is not a readable .npz file ({e})") from e
    else:
        raise WeightsFileError(
            f"{path}: unknown file type {suffix!r} (use one of {', '.join(SUFFIXES)})"
        )
    return {k: np.asarray(v, np.float32) for k, v in tensors.items()}

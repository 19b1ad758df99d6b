"""Flax NNX state <-> PyTorch state_dict (as numpy arrays); `init_from` reads through them.

Conversions per each family spec's state_dict layout (`NetworkSpec.layout`):
- Conv kernels: Flax HWIO -> torch OIHW; the explicit ((1, 1), (1, 1)) Flax padding is
  Conv2d(padding=1).
- Transposed convs: `nnx.ConvTranspose(k4, s2, padding=(2, 2), transpose_kernel=False)` dilates
  the input and cross-correlates with the stored kernel (padding k - 1 - p = 2), while
  `ConvTranspose2d(k4, s2, p1)` is the gradient of a conv, i.e. it correlates with the kernel
  flipped in space and stores it (in, out, kh, kw). So torch = flip_hw(flax).transpose(2, 3, 0, 1).
- BatchNorm: scale/bias -> weight/bias, mean/var -> running_mean/running_var, plus
  num_batches_tracked (the training step). Flax averages the biased batch variance, PyTorch the
  unbiased one; eval mode reads running_var the same way in both, so outputs match.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxcolor.core.errors import ExportError
from jaxcolor.nets import registry

Tree = dict[Any, Any]


def _get(tree: Mapping, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: Tree, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _to_torch_array(kind: str, x: np.ndarray) -> np.ndarray:
    """One Flax array -> its torch layout (float32, contiguous)."""
    x = np.asarray(x, np.float32)
    if kind == "conv":
        x = x.transpose(3, 2, 0, 1)
    elif kind == "conv_transpose":
        x = x[::-1, ::-1].transpose(2, 3, 0, 1)
    elif kind == "linear":  # Flax (in, out) -> torch.nn.Linear (out, in)
        x = x.T
    return np.ascontiguousarray(x)


def _to_flax_array(kind: str, x: np.ndarray) -> np.ndarray:
    """One torch array -> its Flax layout (inverse of `_to_torch_array`)."""
    x = np.asarray(x, np.float32)
    if kind == "conv":
        x = x.transpose(2, 3, 1, 0)
    elif kind == "conv_transpose":
        x = x.transpose(2, 3, 0, 1)[::-1, ::-1]
    elif kind == "linear":
        x = x.T
    return np.ascontiguousarray(x)


def flax_to_torch(
    net: str, arch: Mapping[str, Any], params: Mapping, stats: Mapping, *, step: int = 0
) -> dict[str, np.ndarray]:
    """Pure Flax dicts (params, BatchNorm stats) of `net` -> state_dict of numpy arrays."""
    trees = {"params": params, "stats": stats}
    out: dict[str, np.ndarray] = {}
    for e in registry.layout(net, arch):
        if e.kind == "count":
            out[e.key] = np.asarray(step, np.int64)
            continue
        try:
            value = _get(trees[e.collection], e.path)
        except KeyError as err:
            raise ExportError(
                f"The {net} state has no {'/'.join(map(str, e.path))} (for {e.key}); the "
                "checkpoint does not match its own config."
            ) from err
        out[e.key] = _to_torch_array(e.kind, np.asarray(value))
    _check_all_used(net, arch, trees)
    return out


def _check_all_used(net: str, arch: Mapping[str, Any], trees: Mapping[str, Mapping]) -> None:
    """Every Flax leaf must have been exported; a leftover means the layout table is stale."""
    used = {(e.collection, e.path) for e in registry.layout(net, arch)}
    for collection, tree in trees.items():
        for path in _leaf_paths(tree):
            if (collection, path) not in used:
                raise ExportError(
                    f"{net} {collection} {'/'.join(map(str, path))} has no PyTorch counterpart."
                )


def _leaf_paths(tree: Mapping, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            paths += _leaf_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def torch_to_flax(
    net: str, arch: Mapping[str, Any], tensors: Mapping[str, np.ndarray], *, source: str = "state"
) -> tuple[Tree, Tree]:
    """state_dict (numpy arrays) -> (params, stats) pure Flax dicts; strict about keys.

    num_batches_tracked may be absent (it has no Flax counterpart). `source` names the file in
    errors.
    """
    entries = registry.layout(net, arch)
    expected = {e.key for e in entries}
    optional = {e.key for e in entries if e.kind == "count"}
    missing = sorted(expected - optional - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise ExportError(
            f"{source} does not match the {net} {_describe(arch)}: "
            f"missing keys {_few(missing)}, unexpected keys {_few(unexpected)}."
        )
    trees: dict[str, Tree] = {"params": {}, "stats": {}}
    for e in entries:
        if e.kind != "count":
            _set(trees[e.collection], e.path, _to_flax_array(e.kind, tensors[e.key]))
    return trees["params"], trees["stats"]


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _describe(arch: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in arch.items() if k not in ("file",)) + ")"


def load_safetensors(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """safetensors file -> {key: numpy array}; no torch and no pickle needed."""
    from safetensors.numpy import load_file

    path = pathlib.Path(path)
    if not path.is_file():
        raise ExportError(f"Weights file {path} does not exist.")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own types for a corrupt header
        raise ExportError(f"{path} is not a readable safetensors file: {e}") from e


def save_safetensors(tensors: Mapping[str, np.ndarray], path: str | pathlib.Path, **meta) -> None:
    from safetensors.numpy import save

    metadata = {"format": "pt", **{k: str(v) for k, v in meta.items()}}
    # Written as bytes: safetensors' save_file creates the file mode 0600 whatever the umask,
    # which a server running as another user cannot read.
    pathlib.Path(path).write_bytes(save(dict(tensors), metadata=metadata))


def _torch_shape(kind: str, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "conv":
        return tuple(flax_shape[i] for i in (3, 2, 0, 1))
    if kind == "conv_transpose":
        return tuple(flax_shape[i] for i in (2, 3, 0, 1))
    if kind == "linear":
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def check_shapes(net: str, arch, tensors, params: Mapping, stats: Mapping, *, source: str) -> None:
    """Every tensor must have the torch shape of the corresponding Flax leaf."""
    trees = {"params": params, "stats": stats}
    for e in registry.layout(net, arch):
        if e.kind == "count" or e.key not in tensors:
            continue
        want = _torch_shape(e.kind, tuple(_get(trees[e.collection], e.path).shape))
        got = tuple(tensors[e.key].shape)
        if got != want:
            raise ExportError(
                f"{source}: {e.key} has shape {got}, but the {net} {_describe(arch)} needs {want}."
            )

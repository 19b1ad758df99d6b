"""The FID Inception-v3 (TF's 2015-12-05 graph, as pytorch-fid's `FIDInceptionV3`) in Flax NNX.

Inference only, NHWC, kernels HWIO. The network is torchvision's `Inception3` up to the final
average pool with pytorch-fid's patches: the pool branch of Mixed_5b..5d (A), 6b..6e (C) and 7b
(E_1) averages without counting the zero padding, and Mixed_7c (E_2) max-pools there. Its output
is the 2048-d pool3 feature vector the FID is computed on.

Input handling is pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)`: images in
[0, 1] are resized to 299x299 with `F.interpolate(mode="bilinear", align_corners=False)` and
scaled to [-1, 1]. Here `jax.image.resize(..., "bilinear", antialias=False)` does the resize:
it samples at half-pixel centres (align_corners=False) with the triangle kernel at unit width
(no antialiasing, so downscaling matches too), and renormalising the weights at the border equals
PyTorch's clamping of the source index. Images in any other range (the colorizer's [-1, 1] by
default) are mapped to [0, 1] first.

Weights are never downloaded: `load_fid_inception(path)` reads the file the user has, pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` state_dict, or the same keys in a .safetensors or .npz
file, all without torch (jaxcolor/weights_file.py reads the .pth pickle with a restricted
unpickler that runs no code from it). Attribute names mirror torchvision's, so Flax path
`Mixed_5b.branch1x1.conv.kernel` is torch key `Mixed_5b.branch1x1.conv.weight`.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcolor import weights_file
from jaxcolor.core.errors import JaxcolorError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
)
INPUT_SIZE = 299
FEATURE_DIM = 2048
WEIGHT_SUFFIXES = weights_file.SUFFIXES

# torch keys the FID network does not use: the 1008-way classifier and BatchNorm step counters.
_IGNORED_PREFIXES = ("fc.",)
_IGNORED_SUFFIXES = (".num_batches_tracked",)
# Flax (module, variable) -> torch name of the same tensor.
_TORCH_NAMES = {
    ("conv", "kernel"): "conv.weight",
    ("bn", "scale"): "bn.weight",
    ("bn", "bias"): "bn.bias",
    ("bn", "mean"): "bn.running_mean",
    ("bn", "var"): "bn.running_var",
}


class FidWeightsError(JaxcolorError, ValueError):
    """An Inception weights file for FID that cannot be used; names the file and the fix."""


Pair = tuple[int, int]


class BasicConv2d(nnx.Module):
    """conv (no bias) + BatchNorm(eps 1e-3, running statistics) + ReLU, as torchvision's."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | Pair,
        *,
        stride: int = 1,
        padding: int | Pair = 0,
        precision: Any,
        rngs: nnx.Rngs,
    ):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        self.conv = nnx.Conv(
            cin,
            cout,
            kernel_size=(kh, kw),
            strides=(stride, stride),
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            precision=precision,
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(cout, epsilon=1e-3, use_running_average=True, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x)))


def max_pool(x: jax.Array, *, stride: int, padding: int = 0) -> jax.Array:
    """3x3 max pool, floor mode (`F.max_pool2d(x, 3, stride, padding)`; pads with -inf)."""
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    window, strides = (1, 3, 3, 1), (1, stride, stride, 1)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, pad)


def _avg_pool_exclude_pad(x: jax.Array) -> jax.Array:
    """`F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)`: TF's average pool,
    which divides each window's sum by the number of real (unpadded) pixels in it."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    window, strides = (1, 3, 3, 1), (1, 1, 1, 1)
    sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    counts = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
    return sums / counts


class InceptionA(nnx.Module):
    """pytorch-fid's FIDInceptionA (Mixed_5b..5d)."""

    def __init__(self, cin: int, pool_features: int, *, precision: Any, rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        self.branch1x1 = BasicConv2d(cin, 64, 1, **kw)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1, **kw)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2, **kw)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, **kw)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1, **kw)
        self.branch_pool = BasicConv2d(cin, pool_features, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([self.branch1x1(x), b5, b3, pool], axis=-1)


class InceptionB(nnx.Module):
    """torchvision's InceptionB (Mixed_6a, the 35 -> 17 reduction)."""

    def __init__(self, cin: int, *, precision: Any, rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2, **kw)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, **kw)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return jnp.concatenate([self.branch3x3(x), b3, max_pool(x, stride=2)], axis=-1)


class InceptionC(nnx.Module):
    """pytorch-fid's FIDInceptionC (Mixed_6b..6e): factorised 7x7 convolutions."""

    def __init__(self, cin: int, channels_7x7: int, *, precision: Any, rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1, **kw)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1, **kw)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), **kw)
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0), **kw)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1, **kw)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), **kw)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), **kw)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), **kw)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3), **kw)
        self.branch_pool = BasicConv2d(cin, 192, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            d = layer(d)
        d = self.branch7x7dbl_5(d)
        pool = self.branch_pool(_avg_pool_exclude_pad(x))
        return jnp.concatenate([self.branch1x1(x), b7, d, pool], axis=-1)


class InceptionD(nnx.Module):
    """torchvision's InceptionD (Mixed_7a, the 17 -> 8 reduction)."""

    def __init__(self, cin: int, *, precision: Any, rngs: nnx.Rngs):
        kw = dict(precision=precision, rngs=rngs)
        self.branch3x3_1 = BasicConv2d(cin, 192, 1, **kw)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2, **kw)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1, **kw)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3), **kw)
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0), **kw)
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return jnp.concatenate([b3, b7, max_pool(x, stride=2)], axis=-1)


class InceptionE(nnx.Module):
    """pytorch-fid's FIDInceptionE_1 (Mixed_7b, pool="avg": average without the padding) and
    FIDInceptionE_2 (Mixed_7c, pool="max": the 2015 TF graph max-pools in this branch)."""

    def __init__(self, cin: int, *, pool: str, precision: Any, rngs: nnx.Rngs):
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        kw = dict(precision=precision, rngs=rngs)
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1, **kw)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1, **kw)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), **kw)
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), **kw)
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1, **kw)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), **kw)
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), **kw)
        self.branch_pool = BasicConv2d(cin, 192, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = self.branch3x3_1(x)
        b3 = jnp.concatenate([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], axis=-1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = jnp.concatenate([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], axis=-1)
        pooled = (
            _avg_pool_exclude_pad(x) if self.pool == "avg" else max_pool(x, stride=1, padding=1)
        )
        return jnp.concatenate([self.branch1x1(x), b3, d, self.branch_pool(pooled)], axis=-1)


def preprocess(images: jax.Array, value_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
    """(B, H, W, 3) images in `value_range` -> (B, 299, 299, 3) float32 in [-1, 1], as pytorch-fid:
    to [0, 1], bilinear resize (align_corners=False, no antialiasing), then 2x - 1."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"FID needs RGB images shaped (B, H, W, 3), got shape {images.shape}")
    lo, hi = value_range
    x = (images.astype(jnp.float32) - lo) / (hi - lo)
    x = jax.image.resize(
        x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), method="bilinear", antialias=False
    )
    return 2.0 * x - 1.0


class FIDInceptionV3(nnx.Module):
    """Images -> 2048-d pool3 features of the FID Inception-v3 (pytorch-fid's block 3 output).

    Build it with `load_fid_inception(path)`; constructing it directly gives random weights
    (useful only for tests and `nnx.eval_shape`). `precision` is the convolutions' matmul
    precision: HIGHEST keeps float32 on TPU/GPU so features do not depend on the accelerator.
    """

    def __init__(self, *, rngs: nnx.Rngs | None = None, precision: Any = jax.lax.Precision.HIGHEST):
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        kw = dict(precision=precision, rngs=rngs)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2, **kw)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3, **kw)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1, **kw)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1, **kw)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3, **kw)
        self.Mixed_5b = InceptionA(192, 32, **kw)
        self.Mixed_5c = InceptionA(256, 64, **kw)
        self.Mixed_5d = InceptionA(288, 64, **kw)
        self.Mixed_6a = InceptionB(288, **kw)
        self.Mixed_6b = InceptionC(768, 128, **kw)
        self.Mixed_6c = InceptionC(768, 160, **kw)
        self.Mixed_6d = InceptionC(768, 160, **kw)
        self.Mixed_6e = InceptionC(768, 192, **kw)
        self.Mixed_7a = InceptionD(768, **kw)
        self.Mixed_7b = InceptionE(1280, pool="avg", **kw)
        self.Mixed_7c = InceptionE(2048, pool="max", **kw)

    def __call__(
        self, images: jax.Array, *, value_range: tuple[float, float] = (-1.0, 1.0)
    ) -> jax.Array:
        """(B, H, W, 3) images with values in `value_range` -> (B, 2048) float32 features."""
        x = preprocess(images, value_range)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = max_pool(x, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = max_pool(x, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return jnp.mean(x, axis=(1, 2))


# ---------------------------------------------------------------------------------------------
# Weights: a user-supplied file -> FIDInceptionV3. Nothing is downloaded.


def _expected_file_hint() -> str:
    return (
        f"expected pytorch-fid's Inception state_dict ({FID_WEIGHTS_FILE}, which you download "
        f"yourself from {FID_WEIGHTS_URL}) or the same keys saved as .safetensors or .npz"
    )


@functools.cache
def _abstract_split(precision: Any) -> tuple[nnx.GraphDef, nnx.State]:
    """graphdef + shape-only state of the network (cached: eval_shape takes about a second)."""
    return nnx.split(nnx.eval_shape(lambda: FIDInceptionV3(rngs=nnx.Rngs(0), precision=precision)))


def _torch_key(path: tuple) -> str:
    """Flax state path ('Mixed_5b', 'branch1x1', 'conv', 'kernel') -> torch state_dict key."""
    return ".".join([*map(str, path[:-2]), _TORCH_NAMES[tuple(path[-2:])]])


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """torch state_dict key -> torch shape, for every tensor the FID network reads."""
    flat = nnx.to_flat_state(_abstract_split(None)[1])
    shapes = {}
    for path, var in flat:
        shape = tuple(var.shape)
        if path[-1] == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
        shapes[_torch_key(path)] = shape
    return shapes


def read_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Weights file (.pth/.pt without torch, .safetensors, .npz) -> {torch key: float32 array}."""
    try:
        return weights_file.read_state_dict(path)
    except weights_file.WeightsFileError as e:
        raise FidWeightsError(f"--fid_weights {e}; {_expected_file_hint()}.") from e


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check_keys(tensors: Mapping[str, np.ndarray], source: str) -> None:
    """Strict: every tensor present with its shape, nothing unknown (except fc.* and counters)."""
    expected = expected_shapes()
    used = {
        k
        for k in tensors
        if not k.startswith(_IGNORED_PREFIXES) and not k.endswith(_IGNORED_SUFFIXES)
    }
    missing = sorted(set(expected) - used)
    unexpected = sorted(used - set(expected))
    wrong = sorted(
        f"{k} {tuple(tensors[k].shape)} (expected {expected[k]})"
        for k in set(expected) & used
        if tuple(tensors[k].shape) != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_listing(wrong)}")
    if problems:
        raise FidWeightsError(
            f"--fid_weights {source} is not the FID Inception-v3: {'; '.join(problems)}; "
            f"{_expected_file_hint()}."
        )


def from_state_dict(
    tensors: Mapping[str, np.ndarray],
    *,
    source: str = "<state_dict>",
    precision: Any = jax.lax.Precision.HIGHEST,
) -> FIDInceptionV3:
    """pytorch-fid state_dict (numpy arrays, torch layout) -> FIDInceptionV3; strict."""
    _check_keys(tensors, source)
    graphdef, state = _abstract_split(precision)
    pairs = []
    for path, var in nnx.to_flat_state(state):
        value = np.asarray(tensors[_torch_key(path)], np.float32)
        if path[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        pairs.append((path, var.replace(jnp.asarray(value))))
    return nnx.merge(graphdef, nnx.from_flat_state(pairs))


def load_fid_inception(
    path: str | pathlib.Path, *, precision: Any = jax.lax.Precision.HIGHEST
) -> FIDInceptionV3:
    """The user's FID Inception weights file (`--fid_weights PATH`) -> FIDInceptionV3.

    Reads pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (needs torch; loaded with
    `weights_only=True`) or the same keys in a .safetensors / .npz file. `fc.*` and BatchNorm
    `num_batches_tracked` are ignored; any other missing or unexpected key or wrong shape raises
    FidWeightsError naming the file and the keys.
    """
    return from_state_dict(read_state_dict(path), source=str(path), precision=precision)

"""Building blocks shared by the generators and discriminators (NHWC, kernels HWIO)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.nets.base import COMPUTE_DTYPES, NORMS, UPSAMPLE_IMPLS

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
assert tuple(DTYPES) == COMPUTE_DTYPES

# pix2pix initialises every conv weight N(0, 0.02), biases 0, norm scales N(1, 0.02).
INIT_STD = 0.02


def conv_init() -> jax.nn.initializers.Initializer:
    """N(0, 0.02) as in pix2pix's `init_weights(..., 'normal')`."""
    return jax.nn.initializers.normal(INIT_STD)


def scale_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """N(1, 0.02) for BatchNorm scales, as pix2pix initialises BatchNorm2d weights."""
    return 1.0 + INIT_STD * jax.random.normal(key, shape, dtype)


def conv(
    cin: int,
    cout: int,
    *,
    stride: int,
    use_bias: bool,
    dtype: Any,
    rngs: nnx.Rngs,
    kernel: int = 4,
    padding: int = 1,
) -> nnx.Conv:
    """A k x k conv with PyTorch-style symmetric padding (pix2pix: k4, p1)."""
    return nnx.Conv(
        cin,
        cout,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=conv_init(),
        rngs=rngs,
    )


def resolve_upsample_impl(impl: str, platform: str | None = None) -> str:
    """`model.generator.upsample_impl` -> the formulation used on `platform`.

    "auto" is "subpixel" on XLA:CPU, where the weight gradient of a k4-s2 `conv_transpose` is
    ~40x slower than the sub-pixel one (benchmarks/README.md), and "conv_transpose" elsewhere until
    the two have been measured on that backend. `platform` is that of the devices the model is
    compiled for (`parallel.platform(mesh)`; nets/build.py passes it); only a module built
    directly without one falls back to jax.default_backend().
    """
    if impl not in UPSAMPLE_IMPLS:
        raise ValueError(
            f"model.generator.upsample_impl must be one of {UPSAMPLE_IMPLS}, got {impl!r}"
        )
    if impl == "auto":
        return "subpixel" if (platform or jax.default_backend()) == "cpu" else "conv_transpose"
    return impl


def _subpixel_conv_transpose(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Exactly `lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)))` for a 4x4 HWIO kernel,
    computed as one stride-1 2x2 convolution with 4 * out channels followed by depth-to-space.

    Output row 2m + p only sees kernel rows p and p + 2 (input rows m - 1 + p and m + p), so each
    of the four output phases (p, q) is a 2x2 convolution with the sub-kernel kernel[p::2, q::2]
    over the input padded by one pixel; phase (p, q) is that convolution's output shifted by
    (p, q). The padding is explicit because XLA:CPU lowers the weight gradient of a convolution
    with built-in padding here to the same slow path as the transposed one.
    """
    b, h, w, cin = x.shape
    cout = kernel.shape[-1]
    # (ky, kx) = (2a + p, 2c + q) -> a 2x2 kernel (a, c) whose outputs are ordered (p, q, cout).
    phases = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 4, 1, 3, 5)
    phases = phases.reshape(2, 2, cin, 4 * cout)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = jax.lax.conv_general_dilated(
        padded, phases, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    y = y.reshape(b, h + 1, w + 1, 2, 2, cout)
    rows = [
        jnp.stack([y[:, p : p + h, q : q + w, p, q] for q in (0, 1)], axis=3) for p in (0, 1)
    ]  # each (b, h, w, 2 [q], cout)
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, cout)  # (b, h, 2 [p], w, 2 [q], c)


class UpConv(nnx.ConvTranspose):
    """k4 s2 transposed conv that doubles H and W, equivalent to PyTorch's ConvTranspose2d(p=1).

    lax.conv_transpose pads the dilated input by k - 1 - p = 2 on each side; the kernel is stored
    unflipped (transpose_kernel=False), so export flips it spatially and swaps in/out axes.
    `impl` only changes how the output is computed ("conv_transpose" or the exactly equivalent
    "subpixel"); the parameters, and so checkpoints and exports, are the same for both.
    """

    def __init__(self, cin: int, cout: int, *, impl: str, use_bias: bool, dtype: Any, rngs):
        super().__init__(
            cin,
            cout,
            kernel_size=(4, 4),
            strides=(2, 2),
            padding=((2, 2), (2, 2)),
            use_bias=use_bias,
            dtype=dtype,
            kernel_init=conv_init(),
            rngs=rngs,
        )
        self.impl = resolve_upsample_impl(impl)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if self.impl == "conv_transpose":
            return super().__call__(inputs)
        bias = self.bias[...] if self.bias is not None else None
        x, kernel, bias = self.promote_dtype((inputs, self.kernel[...], bias), dtype=self.dtype)
        y = _subpixel_conv_transpose(x, kernel)
        return y if bias is None else y + bias


def up_conv(
    cin: int, cout: int, *, use_bias: bool, dtype: Any, rngs: nnx.Rngs, impl: str = "auto"
) -> UpConv:
    """The U-Net decoder's k4 s2 up-convolution (see `UpConv`)."""
    return UpConv(cin, cout, impl=impl, use_bias=use_bias, dtype=dtype, rngs=rngs)


class Norm(nnx.Module):
    """BatchNorm | InstanceNorm | identity with pix2pix's settings (eps 1e-5, momentum 0.1)."""

    def __init__(self, kind: str, features: int, *, dtype: Any, rngs: nnx.Rngs):
        if kind not in NORMS:
            raise ValueError(f"model norm must be one of {NORMS}, got {kind!r}")
        self.kind = kind
        if kind == "batch":
            self.layer = nnx.BatchNorm(
                features,
                momentum=0.9,  # flax keeps 0.9 * old + 0.1 * new == torch momentum 0.1
                epsilon=1e-5,
                dtype=dtype,
                scale_init=scale_init,
                rngs=rngs,
            )
        elif kind == "instance":
            # torch.nn.InstanceNorm2d defaults: affine=False, no running statistics.
            self.layer = nnx.InstanceNorm(
                features, epsilon=1e-5, use_bias=False, use_scale=False, dtype=dtype, rngs=rngs
            )
        else:
            self.layer = None

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.kind == "batch":
            return self.layer(x, use_running_average=not train)
        if self.kind == "instance":
            return self.layer(x)
        return x


def count_params(module: nnx.Module) -> int:
    """Trainable parameter count (weights, biases, norm scale/bias; not running statistics)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def compute_dtype(name: str) -> Any:
    """`compute_dtype` config value -> jnp dtype, with a message naming the option."""
    if name not in DTYPES:
        raise ValueError(f"compute_dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]

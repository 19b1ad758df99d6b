"""Building blocks shared by the generators and discriminators (NHWC, kernels HWIO)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# pix2pix initialises every conv weight N(0, 0.02), biases 0, norm scales N(1, 0.02).
INIT_STD = 0.02
NORMS = ("batch", "instance", "none")


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


def up_conv(
    cin: int, cout: int, *, use_bias: bool, dtype: Any, rngs: nnx.Rngs
) -> nnx.ConvTranspose:
    """k4 s2 transposed conv that doubles H and W, equivalent to PyTorch's ConvTranspose2d(p=1).

    lax.conv_transpose pads the dilated input by k - 1 - p = 2 on each side; the kernel is stored
    unflipped (transpose_kernel=False), so export flips it spatially and swaps in/out axes.
    """
    return nnx.ConvTranspose(
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


def uses_bias(norm: str) -> bool:
    """pix2pix drops conv biases before BatchNorm (the norm's shift makes them redundant)."""
    return norm != "batch"


def count_params(module: nnx.Module) -> int:
    """Trainable parameter count (weights, biases, norm scale/bias; not running statistics)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))

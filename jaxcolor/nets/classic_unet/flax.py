"""The classic U-Net (Ronneberger et al. 2015) in Flax NNX, NHWC, as the UAN anime-style image
coloriser (github.com/vrobbin3247/UAN-based-anime-style-image-coloriser) builds it.

Double 3x3 conv (padding 1) + ReLU blocks of widths ngf * (1, 2, 4, 8) = 64-128-256-512, a
1024-wide bottleneck block, 2x2 max-pool down, 2x2 stride-2 transposed conv up, the skip
concatenated after the upsampled features (`cat([up, skip])`), a double conv, a 1x1 output
conv and tanh. `num_downs` poolings (4 in the UAN coloriser), no norm and no dropout by
default, and PyTorch's default initialisation (the UAN coloriser trains a plain `nn.Module`),
not pix2pix's N(0, 0.02).

Options beyond the UAN coloriser: `norm` ("batch" is milesial's Pytorch-UNet `DoubleConv`, conv ->
BatchNorm -> ReLU, convs without bias) and `dropout`, placed as in the original U-Net (dropout
layers "at the end of the contracting path": on the deepest encoder block's output and on the
bottleneck's output).

The PyTorch twin (jaxcolor.nets.classic_unet.torch) names its modules as the UAN coloriser does
(`encoder1.0.weight`, ..., `bottleneck.2.bias`, `upconv4.weight`, `decoder1.0.weight`,
`final_conv.weight`), so with norm="none" and num_downs=4 an export loads into that project's own
class and its trained weights start training here (`init_from`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.classic_unet.spec import classic_widths
from jaxcolor.nets.layers import Norm, resolve_upsample_impl


def _torch_default_kernel_init(in_axis: int = -2, out_axis: int = -1):
    """PyTorch's default conv weight init, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return jax.nn.initializers.variance_scaling(
        1.0 / 3.0, "fan_in", "uniform", in_axis=in_axis, out_axis=out_axis
    )


def _torch_default_bias_init(fan_in: int):
    """PyTorch's default conv bias init: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _conv(cin: int, cout: int, kernel: int, *, use_bias: bool, dtype: Any, rngs) -> nnx.Conv:
    pad = kernel // 2
    return nnx.Conv(
        cin,
        cout,
        kernel_size=(kernel, kernel),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=_torch_default_kernel_init(),
        bias_init=_torch_default_bias_init(cin * kernel * kernel),
        rngs=rngs,
    )


class DoubleConv(nnx.Module):
    """(conv 3x3 -> norm -> ReLU) x 2; the UAN coloriser's `conv_block` with norm="none"."""

    def __init__(self, cin: int, cout: int, *, norm: str, dtype: Any, rngs: nnx.Rngs):
        bias = uses_bias(norm)
        self.conv1 = _conv(cin, cout, 3, use_bias=bias, dtype=dtype, rngs=rngs)
        self.norm1 = Norm(norm, cout, dtype=dtype, rngs=rngs)
        self.conv2 = _conv(cout, cout, 3, use_bias=bias, dtype=dtype, rngs=rngs)
        self.norm2 = Norm(norm, cout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nnx.relu(self.norm1(self.conv1(x), train=train))
        return nnx.relu(self.norm2(self.conv2(x), train=train))


class UpConv2x2(nnx.ConvTranspose):
    """ConvTranspose2d(kernel 2, stride 2): each input pixel becomes a 2x2 output block.

    Parameters as `layers.UpConv` stores them (HWIO, spatially flipped against PyTorch, padding
    k - 1 - p = 1), so export converts them with the same "conv_transpose" rule. The strides
    equal the kernel, so the blocks do not overlap: "auto"/"subpixel" compute it as one matmul
    to 4 * out channels plus depth-to-space (exactly equal, and cheap to differentiate on any
    backend); "conv_transpose" uses lax.conv_transpose.
    """

    def __init__(self, cin: int, cout: int, *, impl: str, dtype: Any, rngs: nnx.Rngs):
        super().__init__(
            cin,
            cout,
            kernel_size=(2, 2),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            use_bias=True,
            dtype=dtype,
            # PyTorch computes a transposed conv's fan_in from weight dim 1 (out channels).
            kernel_init=_torch_default_kernel_init(in_axis=-1, out_axis=-2),
            bias_init=_torch_default_bias_init(cout * 4),
            rngs=rngs,
        )
        self.impl = resolve_upsample_impl(impl)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if self.impl == "conv_transpose":
            return super().__call__(inputs)
        x, kernel, bias = self.promote_dtype(
            (inputs, self.kernel[...], self.bias[...]), dtype=self.dtype
        )
        b, h, w, _ = x.shape
        # out[2i + p, 2j + q] = x[i, j] @ kernel[1 - p, 1 - q] (the stored kernel is flipped).
        y = jnp.einsum("bijc,pqco->bipjqo", x, kernel[::-1, ::-1])
        return y.reshape(b, 2 * h, 2 * w, -1) + bias


def _max_pool_2x2(x: jax.Array) -> jax.Array:
    """MaxPool2d(2) on even-sized NHWC maps (config_checks keeps sizes multiples of 2**n)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ClassicUNetGenerator(nnx.Module):
    """(B, H, W, in_channels) in [-1, 1] -> (B, H, W, out_channels) float32 in [-1, 1]."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 4,
        ngf: int = 64,
        norm: str = "none",
        dropout: float = 0.0,
        upsample_impl: str = "auto",
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_downs < 1:
            raise ValueError(f"model.generator.num_downs must be >= 1, got {num_downs}")
        self.num_downs = num_downs
        self.dtype = dtype
        widths = classic_widths(num_downs, ngf)
        block = lambda cin, cout: DoubleConv(cin, cout, norm=norm, dtype=dtype, rngs=rngs)  # noqa: E731
        self.encoders = nnx.List(
            [block(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(num_downs)]
        )
        self.bottleneck = block(widths[-2], widths[-1])
        self.upconvs = nnx.List(
            [
                UpConv2x2(widths[i + 1], widths[i], impl=upsample_impl, dtype=dtype, rngs=rngs)
                for i in range(num_downs)
            ]
        )
        self.decoders = nnx.List([block(2 * widths[i], widths[i]) for i in range(num_downs)])
        self.final_conv = _conv(widths[0], out_channels, 1, use_bias=True, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.use_dropout = dropout > 0

    def _drop(self, x: jax.Array, train: bool, rngs: nnx.Rngs | None) -> jax.Array:
        if not self.use_dropout:
            return x
        return self.dropout(x, deterministic=not train, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
        h = x.astype(self.dtype)
        skips = []
        for i, encoder in enumerate(self.encoders):
            h = encoder(h, train=train)
            if i == self.num_downs - 1:
                h = self._drop(h, train, rngs)
            skips.append(h)
            h = _max_pool_2x2(h)
        h = self._drop(self.bottleneck(h, train=train), train, rngs)
        for i in reversed(range(self.num_downs)):
            up = self.upconvs[i](h)
            h = self.decoders[i](jnp.concatenate([up, skips[i]], axis=-1), train=train)
        return jnp.tanh(self.final_conv(h).astype(jnp.float32))

"""pix2pix's U-Net generator (`unet_256` by default) and PatchGAN in Flax NNX, NHWC."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.layers import Norm, conv, up_conv
from jaxcolor.nets.pix2pix.spec import dropout_levels, level_widths, patchgan_widths


class UNetGenerator(nnx.Module):
    """Encoder-decoder with skip concatenation; tanh output in [-1, 1].

    Mirrors pix2pix's recursive `UnetSkipConnectionBlock` layer by layer (same widths, biases,
    norms, dropout placement, and skip order `concat([skip, upsampled])`), so parameter counts
    match and weights convert one-to-one.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        upsample_impl: str = "auto",
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_downs < 2:
            raise ValueError(f"model.generator.num_downs must be >= 2, got {num_downs}")
        self.num_downs = num_downs
        self.dtype = dtype
        widths = level_widths(num_downs, ngf)
        bias = uses_bias(norm)
        innermost = num_downs - 1

        downs, down_norms, ups, up_norms = [], [], [], []
        for i, width in enumerate(widths):
            cin = in_channels if i == 0 else widths[i - 1]
            downs.append(conv(cin, width, stride=2, use_bias=bias, dtype=dtype, rngs=rngs))
            # No norm after the outermost conv (applied to the image) nor the innermost one.
            has_norm = 0 < i < innermost
            down_norms.append(Norm(norm if has_norm else "none", width, dtype=dtype, rngs=rngs))

            up_in = width if i == innermost else 2 * width
            up_out = out_channels if i == 0 else widths[i - 1]
            # The outermost upconv has a bias (it feeds tanh directly, no norm after it).
            ups.append(
                up_conv(
                    up_in,
                    up_out,
                    use_bias=bias or i == 0,
                    dtype=dtype,
                    rngs=rngs,
                    impl=upsample_impl,
                )
            )
            up_norms.append(Norm("none" if i == 0 else norm, up_out, dtype=dtype, rngs=rngs))

        self.downs = nnx.List(downs)
        self.down_norms = nnx.List(down_norms)
        self.ups = nnx.List(ups)
        self.up_norms = nnx.List(up_norms)
        self.dropout = nnx.Dropout(dropout)
        self.dropout_levels = tuple(dropout_levels(num_downs)) if dropout > 0 else ()

    def __call__(self, x: jax.Array, *, train: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
        """(B, H, W, in_channels) in [-1, 1] -> (B, H, W, out_channels) float32 in [-1, 1]."""
        h = x.astype(self.dtype)
        skips = []
        for i, (down, norm) in enumerate(zip(self.downs, self.down_norms, strict=True)):
            if i > 0:
                h = nnx.leaky_relu(h, 0.2)
            h = norm(down(h), train=train)
            skips.append(h)

        u = skips.pop()  # innermost features: the bottleneck
        for i in reversed(range(self.num_downs)):
            u = self.up_norms[i](self.ups[i](nnx.relu(u)), train=train)
            if i in self.dropout_levels:
                u = self.dropout(u, deterministic=not train, rngs=rngs)
            if i > 0:
                u = jnp.concatenate([skips.pop(), u], axis=-1)
        return jnp.tanh(u.astype(jnp.float32))


class PatchDiscriminator(nnx.Module):
    """k4 convs with strides 2, ..., 2, 1, 1; no norm on the first layer; raw logits out."""

    def __init__(
        self,
        *,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if n_layers < 1:
            raise ValueError(f"model.discriminator.n_layers must be >= 1, got {n_layers}")
        self.dtype = dtype
        bias = uses_bias(norm)
        widths = patchgan_widths(ndf, n_layers)
        strides = [2] * n_layers + [1]

        convs, norms = [], []
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            cin = in_channels if i == 0 else widths[i - 1]
            convs.append(
                conv(cin, width, stride=stride, use_bias=bias or i == 0, dtype=dtype, rngs=rngs)
            )
            norms.append(Norm("none" if i == 0 else norm, width, dtype=dtype, rngs=rngs))
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        self.head = conv(widths[-1], 1, stride=1, use_bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """(B, H, W, C) -> (B, H', W', 1) float32 patch logits (H' = H / 2^n_layers - 2)."""
        h = x.astype(self.dtype)
        for c, norm in zip(self.convs, self.norms, strict=True):
            h = nnx.leaky_relu(norm(c(h), train=train), 0.2)
        return self.head(h).astype(jnp.float32)

"""pix2pix U-Net generator (`unet_256` by default) in Flax NNX, NHWC."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.models.layers import Norm, conv, up_conv, uses_bias


def level_widths(num_downs: int, ngf: int) -> list[int]:
    """Encoder output width at each level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at 8*ngf)."""
    return [ngf * min(2**i, 8) for i in range(num_downs)]


def dropout_levels(num_downs: int) -> range:
    """Levels whose decoder block ends in dropout: pix2pix's `num_downs - 5` 8*ngf blocks.

    Level 0 is the outermost block and `num_downs - 1` the innermost, so for unet_256 these are
    levels 4, 5, 6: the three decoder blocks right after the bottleneck.
    """
    return range(4, num_downs - 1)


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

"""PatchGAN discriminator (pix2pix's `NLayerDiscriminator`, 70x70 receptive field by default)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.models.layers import Norm, conv, uses_bias


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
        widths = [ndf * min(2**i, 8) for i in range(n_layers + 1)]
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

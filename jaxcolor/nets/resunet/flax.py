"""Residual attention U-Net with deep supervision (Chen et al. 2019, "Automatic
Colorization of Anime Sketch Image with Enhanced Residual U-net and Auxiliary Classifier GAN"),
Flax NNX, NHWC.

The write-up fixes: a U-Net "with pooling and un-pooling layers", residual down- and up-sample
blocks with the skip connections concatenated in the up block, attention gates on the skip
connections, and "two additional loss[es] in two decoders" (deep supervision). It gives no
widths, so these follow the Attention U-Net (Oktay et al. 2018) 2D layout:

- level i (0 = full resolution) has width ngf * min(2**i, max_mult); defaults 64-128-256-512
  and a 1024-wide bottleneck after num_downs=4 max-pools (512 px -> 32 x 32);
- encoder: ResBlock(in -> w0), then num_downs x [2x2 max-pool, ResBlock(w[i-1] -> w[i])];
- decoder level i: nearest 2x un-pooling of the coarser decoder features u, the skip gated by
  AttentionGate(skip, gate=u), ResBlock(concat[gated skip, up(u)] -> w[i]);
- output: 1x1 conv + tanh; deep supervision: `num_aux` more 1x1 conv + tanh heads on the decoder
  outputs at levels 1..num_aux (1/2, 1/4, ... resolution), returned only with return_aux=True.

ResBlock is He et al.'s basic block: relu(norm(conv3(relu(norm(conv3(x))))) + shortcut(x)), the
shortcut a 1x1 conv + norm when the width changes (identity otherwise).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.layers import Norm, conv
from jaxcolor.nets.resunet.spec import resunet_widths


def _upsample_nearest(x: jax.Array) -> jax.Array:
    """2x nearest-neighbour "un-pooling" (torch: Upsample(scale_factor=2, mode='nearest'))."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _upsample_bilinear(x: jax.Array) -> jax.Array:
    """2x bilinear, half-pixel centres, edges clamped (torch: align_corners=False)."""
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "bilinear", antialias=False)


class ResBlock(nnx.Module):
    """Two 3x3 conv-norm(-relu) layers plus a (projected) shortcut, relu after the sum."""

    def __init__(self, cin: int, cout: int, *, norm: str, dtype: Any, rngs: nnx.Rngs):
        bias = uses_bias(norm)
        kw = dict(stride=1, kernel=3, padding=1, use_bias=bias, dtype=dtype, rngs=rngs)
        self.conv1 = conv(cin, cout, **kw)
        self.norm1 = Norm(norm, cout, dtype=dtype, rngs=rngs)
        self.conv2 = conv(cout, cout, **kw)
        self.norm2 = Norm(norm, cout, dtype=dtype, rngs=rngs)
        if cin != cout:
            self.proj = conv(
                cin, cout, stride=1, kernel=1, padding=0, use_bias=bias, dtype=dtype, rngs=rngs
            )
            self.proj_norm = Norm(norm, cout, dtype=dtype, rngs=rngs)
        else:
            self.proj = self.proj_norm = None

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = nnx.relu(self.norm1(self.conv1(x), train=train))
        h = self.norm2(self.conv2(h), train=train)
        shortcut = x if self.proj is None else self.proj_norm(self.proj(x), train=train)
        return nnx.relu(h + shortcut)


class AttentionGate(nnx.Module):
    """Oktay et al.'s additive attention gate with the gating signal at the coarser level.

    alpha = sigmoid(psi(relu(theta(x) + phi(g)))): theta a 2x2 stride-2 conv (no bias) that
    brings the skip x to g's resolution, phi and psi 1x1 convs; alpha is upsampled bilinearly to
    x's resolution and multiplies x. Oktay's output transform (1x1 conv + BN) is left out: the
    residual up block that follows starts with a conv over the gated skip anyway.
    """

    def __init__(self, skip: int, gate: int, inter: int, *, dtype: Any, rngs: nnx.Rngs):
        one = dict(stride=1, kernel=1, padding=0, use_bias=True, dtype=dtype, rngs=rngs)
        self.theta = conv(
            skip, inter, stride=2, kernel=2, padding=0, use_bias=False, dtype=dtype, rngs=rngs
        )
        self.phi = conv(gate, inter, **one)
        self.psi = conv(inter, 1, **one)

    def coefficients(self, x: jax.Array, g: jax.Array) -> jax.Array:
        """(B, H, W, 1) attention coefficients in (0, 1) for the skip x."""
        f = nnx.relu(self.theta(x) + self.phi(g))
        return _upsample_bilinear(nnx.sigmoid(self.psi(f)))

    def __call__(self, x: jax.Array, g: jax.Array) -> jax.Array:
        return x * self.coefficients(x, g)


class ResUNetGenerator(nnx.Module):
    """Residual attention U-Net; `g(x, train=...)` -> (B, H, W, out_channels) float32 in [-1, 1].

    With `return_aux=True` it returns (image, [aux_1, ..., aux_num_aux]) where aux_k is the
    tanh RGB head at 1/2**k resolution (deep supervision); H and W must be multiples of
    2**num_downs.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 4,
        ngf: int = 64,
        max_mult: int = 16,
        norm: str = "batch",
        num_aux: int = 2,
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_downs < 1:
            raise ValueError(f"model.generator.num_downs must be >= 1, got {num_downs}")
        if not 0 <= num_aux < num_downs:
            raise ValueError(
                f"model.generator.num_aux must be in [0, num_downs - 1 = {num_downs - 1}], "
                f"got {num_aux}"
            )
        self.num_downs = num_downs
        self.dtype = dtype
        widths = resunet_widths(num_downs, ngf, max_mult)
        kw = dict(dtype=dtype, rngs=rngs)
        cins = [in_channels, *widths[:-1]]
        self.encoders = nnx.List(
            [ResBlock(cin, w, norm=norm, **kw) for cin, w in zip(cins, widths, strict=True)]
        )
        # Decoder level i (0..num_downs - 1): gate and block; u at level i + 1 has widths[i + 1].
        self.gates = nnx.List(
            [
                AttentionGate(widths[i], widths[i + 1], max(widths[i] // 2, 1), **kw)
                for i in range(num_downs)
            ]
        )
        self.decoders = nnx.List(
            [
                ResBlock(widths[i] + widths[i + 1], widths[i], norm=norm, **kw)
                for i in range(num_downs)
            ]
        )
        head = dict(stride=1, kernel=1, padding=0, use_bias=True, **kw)
        self.out = conv(widths[0], out_channels, **head)
        self.aux_heads = nnx.List(
            [conv(widths[k], out_channels, **head) for k in range(1, num_aux + 1)]
        )

    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool,
        rngs: nnx.Rngs | None = None,
        return_aux: bool = False,
    ):
        """(B, H, W, in_channels) in [-1, 1] -> image, or (image, aux list) with return_aux."""
        del rngs  # no dropout; accepted so the step calls every generator the same way
        h = x.astype(self.dtype)
        skips = []
        for i, block in enumerate(self.encoders):
            if i > 0:
                h = nnx.max_pool(h, (2, 2), strides=(2, 2))
            h = block(h, train=train)
            skips.append(h)

        u = skips.pop()  # bottleneck
        decoded = {}
        for i in reversed(range(self.num_downs)):
            skip = self.gates[i](skips.pop(), u)
            u = self.decoders[i](jnp.concatenate([skip, _upsample_nearest(u)], -1), train=train)
            decoded[i] = u
        image = jnp.tanh(self.out(u).astype(jnp.float32))
        if not return_aux:
            return image
        aux = [
            jnp.tanh(head(decoded[k]).astype(jnp.float32))
            for k, head in enumerate(self.aux_heads, start=1)
        ]
        return image, aux

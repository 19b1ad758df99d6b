"""Reference-guided colorizer (Liu et al. 2022, "Reference-guided structure-aware deep sketch
colorization for cartoons", as its unofficial PyTorch implementation builds it): a colour-style
encoder of a reference image and a U-Net whose decoder is modulated by the style code (AdaIN),
plus a multi-scale PatchGAN.

The style encoder is a stem conv, 4 ResNet blocks (each halving H and W) and global average
pooling to a `style_dim` (256) code. Global pooling discards where colours are, so the code can
only carry the reference's colour statistics, never its layout. The colorizer is the pix2pix
U-Net (same encoder, up-convolutions and skips); at each fused decoder level the up-convolved
features are instance-normalised and then scaled and shifted per channel by
`1 + gamma(code), beta(code)` (one linear layer per level). With `style_codes=4` the four
blocks of the style encoder each give a pooled code, fused into four decoder levels, deepest
block into the deepest of them (that implementation's fine-tune variant); with 1 the final
code drives every decoder level but the output one.

Multi-scale outputs (the paper's "multi-scale output images"): with `num_aux=K` the decoder
levels 1..K (1/2, 1/4, ... resolution) each get a 1x1 conv + tanh RGB head on what the next
up-convolution reads (the ReLU of skip ++ decoder features), returned only with
`return_aux=True` and trained by `loss.aux_weights` as the residual U-Net's deep supervision.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcolor.nets.base import uses_bias
from jaxcolor.nets.layers import Norm, conv, conv_init, up_conv
from jaxcolor.nets.pix2pix.flax import PatchDiscriminator
from jaxcolor.nets.pix2pix.spec import dropout_levels, level_widths
from jaxcolor.nets.reference.spec import (
    STYLE_BLOCKS,
    STYLE_CODES,
    code_index,
    fused_levels,
    style_widths,
)


class ResBlock(nnx.Module):
    """ResNet basic block halving H and W: conv3x3 s2, ReLU, conv3x3, plus a 1x1 s2 shortcut.

    No normalisation: instance or batch statistics would wash out exactly the colour statistics
    the encoder has to report.
    """

    def __init__(self, cin: int, cout: int, *, dtype: Any, rngs: nnx.Rngs):
        self.conv1 = _style_conv(cin, cout, 3, stride=2, dtype=dtype, rngs=rngs)
        self.conv2 = _style_conv(cout, cout, 3, stride=1, dtype=dtype, rngs=rngs)
        self.shortcut = _style_conv(cin, cout, 1, stride=2, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv2(nnx.relu(self.conv1(x)))
        return nnx.relu(h + self.shortcut(x))


def _style_conv(cin: int, cout: int, kernel: int, *, stride: int, dtype: Any, rngs) -> nnx.Conv:
    """k x k conv, PyTorch-style padding k // 2, He-normal kernel: without norms, pix2pix's
    N(0, 0.02) would shrink the code to ~1e-4 at init."""
    pad = kernel // 2
    return nnx.Conv(
        cin,
        cout,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dtype=dtype,
        kernel_init=jax.nn.initializers.he_normal(),
        rngs=rngs,
    )


class StyleEncoder(nnx.Module):
    """(B, H, W, 3) reference in [-1, 1] -> one pooled (B, width_i) code per ResNet block."""

    def __init__(self, *, style_width: int, style_dim: int, dtype: Any, rngs: nnx.Rngs):
        widths = style_widths(style_width, style_dim)
        self.stem = _style_conv(3, style_width, 3, stride=1, dtype=dtype, rngs=rngs)
        cins = [style_width, *widths[:-1]]
        self.blocks = nnx.List(
            [
                ResBlock(cin, cout, dtype=dtype, rngs=rngs)
                for cin, cout in zip(cins, widths, strict=True)
            ]
        )

    def __call__(self, reference: jax.Array) -> list[jax.Array]:
        h = nnx.relu(self.stem(reference))
        codes = []
        for block in self.blocks:
            h = block(h)
            codes.append(h.astype(jnp.float32).mean(axis=(1, 2)))  # global average pooling
        return codes


class AdaIN(nnx.Module):
    """Instance norm (no affine) then per-channel `x * (1 + gamma) + beta` from a style code."""

    def __init__(self, code_dim: int, features: int, *, dtype: Any, rngs: nnx.Rngs):
        self.norm = nnx.InstanceNorm(
            features, epsilon=1e-5, use_bias=False, use_scale=False, dtype=dtype, rngs=rngs
        )
        self.proj = nnx.Linear(code_dim, 2 * features, kernel_init=conv_init(), rngs=rngs)

    def __call__(self, x: jax.Array, code: jax.Array) -> jax.Array:
        gamma, beta = jnp.split(self.proj(code), 2, axis=-1)
        h = self.norm(x)
        return h * (1.0 + gamma[:, None, None, :]).astype(h.dtype) + beta[:, None, None, :].astype(
            h.dtype
        )


class ReferenceUNet(nnx.Module):
    """pix2pix U-Net over sketch ++ hints whose decoder takes its colours from a reference.

    Called as `g(x, train=..., rngs=..., reference=ref)` with `ref` (B, H', W', 3) in [-1, 1]
    (any H', W' >= 16); returns one float32 (B, H, W, out_channels) image in [-1, 1], or with
    `return_aux=True` (image, [aux at 1/2, ..., 1/2**num_aux]).
    """

    takes_reference = True

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        style_width: int = 64,
        style_dim: int = 256,
        style_codes: int = 1,
        upsample_impl: str = "auto",
        num_aux: int = 0,
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_downs < 2:
            raise ValueError(f"model.generator.num_downs must be >= 2, got {num_downs}")
        if not 0 <= num_aux < num_downs:
            raise ValueError(
                f"model.generator.num_aux must be in [0, num_downs - 1 = {num_downs - 1}], "
                f"got {num_aux}"
            )
        if style_codes not in STYLE_CODES:
            raise ValueError(
                f"model.generator.style_codes must be one of {STYLE_CODES}, got {style_codes}"
            )
        if style_codes == 4 and num_downs < STYLE_BLOCKS + 1:
            raise ValueError(
                f"model.generator.style_codes=4 fuses into decoder levels 1..4 and needs "
                f"model.generator.num_downs >= 5, got {num_downs}"
            )
        self.num_downs = num_downs
        self.dtype = dtype
        self.style_codes = style_codes
        widths = level_widths(num_downs, ngf)
        codes = style_widths(style_width, style_dim)
        bias = uses_bias(norm)
        innermost = num_downs - 1
        self.fused = fused_levels(num_downs, style_codes)

        downs, down_norms, ups, up_norms, adain = [], [], [], [], []
        for i, width in enumerate(widths):
            cin = in_channels if i == 0 else widths[i - 1]
            downs.append(conv(cin, width, stride=2, use_bias=bias, dtype=dtype, rngs=rngs))
            has_norm = 0 < i < innermost
            down_norms.append(Norm(norm if has_norm else "none", width, dtype=dtype, rngs=rngs))

            up_in = width if i == innermost else 2 * width
            up_out = out_channels if i == 0 else widths[i - 1]
            # Fused levels get AdaIN's instance norm instead: no BatchNorm, so their up-conv
            # keeps its bias (the instance norm then removes it, as in pix2pix's instance U-Net).
            plain_norm = "none" if i == 0 or i in self.fused else norm
            ups.append(
                up_conv(
                    up_in,
                    up_out,
                    use_bias=uses_bias(plain_norm),
                    dtype=dtype,
                    rngs=rngs,
                    impl=upsample_impl,
                )
            )
            up_norms.append(Norm(plain_norm, up_out, dtype=dtype, rngs=rngs))
        for level in self.fused:
            code_dim = codes[code_index(level, style_codes)]
            adain.append(AdaIN(code_dim, widths[level - 1], dtype=dtype, rngs=rngs))

        self.style = StyleEncoder(
            style_width=style_width, style_dim=style_dim, dtype=dtype, rngs=rngs
        )
        self.downs = nnx.List(downs)
        self.down_norms = nnx.List(down_norms)
        self.ups = nnx.List(ups)
        self.up_norms = nnx.List(up_norms)
        self.adain = nnx.List(adain)
        self.dropout = nnx.Dropout(dropout)
        self.dropout_levels = tuple(dropout_levels(num_downs)) if dropout > 0 else ()
        head = dict(stride=1, kernel=1, padding=0, use_bias=True, dtype=dtype, rngs=rngs)
        self.aux_heads = nnx.List(
            [conv(2 * widths[k - 1], out_channels, **head) for k in range(1, num_aux + 1)]
        )

    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool,
        rngs: nnx.Rngs | None = None,
        reference: jax.Array | None = None,
        return_aux: bool = False,
    ):
        """(B, H, W, in_channels) and reference (B, H', W', 3), both in [-1, 1] ->
        (B, H, W, out_channels) float32 in [-1, 1] (and the aux images with return_aux)."""
        if reference is None:
            raise ValueError(
                "ReferenceUNet needs reference=(B, H, W, 3) colour image in [-1, 1]; the data "
                "pipeline adds batch['reference'] for model.generator.name='reference_unet'."
            )
        codes = self.style(reference.astype(self.dtype))
        adain = dict(zip(self.fused, self.adain, strict=True))

        h = x.astype(self.dtype)
        skips = []
        for i, (down, norm) in enumerate(zip(self.downs, self.down_norms, strict=True)):
            if i > 0:
                h = nnx.leaky_relu(h, 0.2)
            h = norm(down(h), train=train)
            skips.append(h)

        u = skips.pop()
        aux = {}
        for i in reversed(range(self.num_downs)):
            u = self.up_norms[i](self.ups[i](nnx.relu(u)), train=train)
            if i in adain:
                u = adain[i](u, codes[code_index(i, self.style_codes)])
            if i in self.dropout_levels:
                u = self.dropout(u, deterministic=not train, rngs=rngs)
            if i > 0:
                u = jnp.concatenate([skips.pop(), u], axis=-1)
            if return_aux and 1 <= i <= len(self.aux_heads):
                aux[i] = jnp.tanh(self.aux_heads[i - 1](nnx.relu(u)).astype(jnp.float32))
        image = jnp.tanh(u.astype(jnp.float32))
        if not return_aux:
            return image
        return image, [aux[k] for k in range(1, len(self.aux_heads) + 1)]


def downsample(x: jax.Array) -> jax.Array:
    """pix2pixHD's AvgPool2d(3, stride 2, padding 1, count_include_pad=False), NHWC."""
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
    return total / count


class MultiScaleDiscriminator(nnx.Module):
    """pix2pixHD's multi-scale D: `num_scales` PatchGANs on the input at 1x, 1/2, 1/4, ..."""

    def __init__(
        self,
        *,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        num_scales: int = 3,
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_scales < 1:
            raise ValueError(f"model.discriminator.num_scales must be >= 1, got {num_scales}")
        self.scales = nnx.List(
            [
                PatchDiscriminator(
                    in_channels=in_channels,
                    ndf=ndf,
                    n_layers=n_layers,
                    norm=norm,
                    dtype=dtype,
                    rngs=rngs,
                )
                for _ in range(num_scales)
            ]
        )

    def __call__(self, x: jax.Array, *, train: bool) -> list[jax.Array]:
        """(B, H, W, C) -> [float32 patch logits at 1x, 1/2, ...] (one array per scale)."""
        logits = []
        for i, d in enumerate(self.scales):
            if i > 0:
                x = downsample(x)
            logits.append(d(x, train=train))
        return logits

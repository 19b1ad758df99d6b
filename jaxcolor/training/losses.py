"""GAN, reconstruction, perceptual and hint losses; each returns a scalar (the GAN losses take
raw discriminator logits)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor.data import hints as hints_lib
from jaxcolor.nets.inputs import to_unit

GAN_MODES = ("vanilla", "lsgan", "hinge", "none")
RECON = ("l1", "l2")


def _per_scale(fn, *logits):
    """A multi-scale discriminator's logits (one array per scale) -> mean of `fn` per scale."""
    return sum(fn(*scale) for scale in zip(*logits, strict=True)) / len(logits[0])


def discriminator_loss(mode: str, real: jax.Array, fake: jax.Array) -> jax.Array:
    """pix2pix's D objective: mean over patches of the real and fake terms, times 0.5.

    Lists of logits (a multi-scale D) give the mean of the per-scale losses.
    """
    if isinstance(real, list | tuple):
        return _per_scale(lambda r, f: discriminator_loss(mode, r, f), real, fake)
    if mode == "vanilla":  # BCE with logits against 1 (real) and 0 (fake)
        loss = jax.nn.softplus(-real).mean() + jax.nn.softplus(fake).mean()
    elif mode == "lsgan":
        loss = jnp.square(real - 1.0).mean() + jnp.square(fake).mean()
    elif mode == "hinge":
        loss = jax.nn.relu(1.0 - real).mean() + jax.nn.relu(1.0 + fake).mean()
    else:
        raise ValueError(f"loss.gan_mode must be one of {GAN_MODES}, got {mode!r}")
    return 0.5 * loss


def generator_gan_loss(mode: str, fake: jax.Array) -> jax.Array:
    """The generator's adversarial term: make D call its output real (per-scale mean for lists)."""
    if isinstance(fake, list | tuple):
        return _per_scale(lambda f: generator_gan_loss(mode, f), fake)
    if mode == "vanilla":
        return jax.nn.softplus(-fake).mean()
    if mode == "lsgan":
        return jnp.square(fake - 1.0).mean()
    if mode == "hinge":
        return -fake.mean()
    raise ValueError(f"loss.gan_mode must be one of {GAN_MODES}, got {mode!r}")


def real_probability(mode: str, logits: jax.Array) -> jax.Array:
    """D's mean score, comparable across modes: sigmoid for vanilla, the raw output otherwise.

    Lists of logits (a multi-scale D) give the mean over scales.
    """
    if isinstance(logits, list | tuple):
        return _per_scale(lambda x: real_probability(mode, x), logits)
    return jax.nn.sigmoid(logits).mean() if mode == "vanilla" else logits.mean()


def reconstruction_loss(kind: str, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute (l1) or squared (l2) error in the [-1, 1] image space."""
    if kind == "l1":
        return jnp.abs(pred - target).mean()
    if kind == "l2":
        return jnp.square(pred - target).mean()
    raise ValueError(f"loss.recon must be one of {RECON}, got {kind!r}")


# SSIM as Wang et al. define it: an 11x11 Gaussian window of sigma 1.5 (K1 0.01, K2 0.03).
SSIM_WINDOW = 11  # images need at least this many pixels per side
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_band(n: int) -> np.ndarray:
    """(n - SSIM_WINDOW + 1, n): row i holds the normalised Gaussian window from column i on, so
    `band @ x` is the window's valid 1-D filter along x's first axis."""
    offsets = np.arange(SSIM_WINDOW) - (SSIM_WINDOW - 1) / 2
    window = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    window /= window.sum()
    band = np.zeros((n - SSIM_WINDOW + 1, n), np.float32)
    for i in range(n - SSIM_WINDOW + 1):
        band[i, i : i + SSIM_WINDOW] = window
    return band


def _gaussian_filter(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> the separable SSIM window's valid filter, (B, H - 10, W - 10, C).

    Two banded matrix products: on CPUs they run about 7x faster than the per-row 1-D
    convolutions of dm_pix.ssim (forward and backward; benchmarks/README.md, "Quality recipe"),
    with the same result to float32 rounding."""
    _, h, w, _ = x.shape
    x = jnp.einsum("oh,bhwc->bowc", _gaussian_band(h), x)
    return jnp.einsum("pw,bowc->bopc", _gaussian_band(w), x)


def ssim(pred: jax.Array, target: jax.Array) -> jax.Array:
    """(B, H, W, C) images in [-1, 1] -> per-image SSIM (B,), compared in [0, 1] (data range 1)
    and averaged over the valid region and the channels: dm_pix.ssim's (and scikit-image's
    Gaussian) definition, computed with `_gaussian_filter`."""
    p, t = ((jnp.clip(x.astype(jnp.float32), -1.0, 1.0) + 1.0) * 0.5 for x in (pred, target))
    c = p.shape[-1]
    moments = _gaussian_filter(jnp.concatenate([p, t, p * p, t * t, p * t], axis=-1))
    mu_p, mu_t, pp, tt, pt = (moments[..., i * c : (i + 1) * c] for i in range(5))
    var_p, var_t, cov = pp - mu_p * mu_p, tt - mu_t * mu_t, pt - mu_p * mu_t
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    numerator = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    denominator = (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
    return (numerator / denominator).mean(axis=(1, 2, 3))


def ssim_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """1 - the batch's mean SSIM: 0 for a perfect output. With L1 it keeps the structure L1
    alone blurs (Zhao et al. 2017)."""
    return 1.0 - ssim(pred, target).mean()


def _downsample_mean(x: jax.Array, factor: int) -> jax.Array:
    """(B, H, W, C) -> (B, H / factor, W / factor, C) by averaging factor x factor blocks."""
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def deep_supervision_losses(aux: list[jax.Array], target: jax.Array) -> dict[str, jax.Array]:
    """{"g_aux1": L1(aux[0], target at its resolution), ...} for the deep-supervision heads.

    The target is averaged down to each head's resolution rather than the head upsampled: the
    head then answers for the coarse colours its level can represent, at 1/4, 1/16 of the cost,
    instead of being pushed towards detail that only the finer levels hold.
    """
    out = {}
    for k, a in enumerate(aux, 1):
        factor = target.shape[1] // a.shape[1]
        out[f"g_aux{k}"] = jnp.abs(a - _downsample_mean(target, factor)).mean()
    return out


def gram_matrix(features: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C, C) Gram matrix divided by C * H * W (accumulated in float32)."""
    _, h, w, c = features.shape
    gram = jnp.einsum("bhwc,bhwd->bcd", features, features, preferred_element_type=jnp.float32)
    return gram / (c * h * w)


def perceptual_loss(fake: list[jax.Array], real: list[jax.Array]) -> jax.Array:
    """Sum over the VGG layers of the mean absolute difference of the feature maps."""
    return sum(
        jnp.abs(f.astype(jnp.float32) - r.astype(jnp.float32)).mean()
        for f, r in zip(fake, real, strict=True)
    )


def style_loss(fake: list[jax.Array], real: list[jax.Array]) -> jax.Array:
    """Sum over the VGG layers of the mean absolute difference of the Gram matrices.

    L1 rather than Gatys' squared error: the Gram entries of the deeper layers are orders of
    magnitude larger than the shallow ones', and a square lets those few entries dominate the
    sum and its gradient; L1 is what the reference-colorization work this follows trains with.
    """
    return sum(
        jnp.abs(gram_matrix(f) - gram_matrix(r)).mean() for f, r in zip(fake, real, strict=True)
    )


def hint_targets(batch: dict[str, jax.Array], method: str) -> tuple[jax.Array, jax.Array]:
    """(hint colours (B, H, W, 3) in [-1, 1], hint mask (B, H, W) bool) of a uint8 batch whose
    `data.hints` is `method`, one of `hints.pixel_methods()`."""
    hints = batch["hints"]
    return to_unit(hints[..., :3]), hints_lib.hinted_pixels(hints, method)


def hint_loss(pred: jax.Array, colors: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean absolute difference between `pred` and the hint `colors` over the pixels of `mask`
    (and the colour channels), in [-1, 1]; 0, with zero gradients, when no pixel is hinted.

    Sparse hints cover ~1 % of an image, so they are ~1 % of the L1 term against the ground
    truth: trained on that alone, a points model ignored the user's clicks (28/255 mean error
    there, issue 27). This term makes the user's colour at the user's pixels a target of its own.
    """
    weights = mask[..., None].astype(jnp.float32)
    total = (jnp.abs(pred.astype(jnp.float32) - colors) * weights).sum()
    return total / jnp.maximum(weights.sum() * pred.shape[-1], 1.0)

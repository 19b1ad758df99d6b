"""Per-image quality metrics on device: L1, PSNR and SSIM of predictions against targets.

Images arrive in the models' [-1, 1] range and are compared in [0, 1] (data range 1), the
convention of scikit-image. SSIM is Wang et al.'s with an 11x11 Gaussian window
(sigma 1.5, K1 0.01, K2 0.03) over the valid region, averaged over pixels and channels: the
same as `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)` (tests/test_evaluation.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcolor.training.losses import ssim

NAMES = ("l1", "psnr", "ssim")


def to_unit(x: jax.Array) -> jax.Array:
    """[-1, 1] -> [0, 1], clipped (the generators' tanh never leaves it; targets are exact)."""
    return jnp.clip((x.astype(jnp.float32) + 1.0) * 0.5, 0.0, 1.0)


def per_image(pred: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
    """(B, H, W, C) images in [-1, 1] -> {"l1", "psnr" (dB), "ssim"}, each of shape (B,).

    l1 is measured in [-1, 1] like the training loss; PSNR is capped at 100 dB for an exact
    match (mean squared error 0).
    """
    p, t = to_unit(pred), to_unit(target)
    axes = tuple(range(1, p.ndim))
    mse = jnp.square(p - t).mean(axis=axes)
    return {
        "l1": jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)).mean(axis=axes),
        "psnr": jnp.minimum(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10)), 100.0),
        "ssim": ssim(pred, target),  # the one SSIM: loss.ssim_weight trains with it too
    }


def batch_means(pred: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
    """The batch means of `per_image` (scalars); what training logs as val/*."""
    return {k: v.mean() for k, v in per_image(pred, target).items()}

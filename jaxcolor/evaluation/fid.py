"""Fréchet Inception Distance between real and generated images, batch by batch.

Per batch, on device (one jitted call): Inception pool3 features, then the batch's count, mean
and *centred* scatter matrix sum_i (f_i - mean_b)(f_i - mean_b)^T in float32. On the host these
are merged in float64 with Chan et al.'s parallel update, so the covariance is never formed as
E[ff^T] - mu mu^T, whose cancellation loses digits when the features' mean is large next to their
spread. The device-to-host copy of a batch's moments is started at once and read one update later,
so the device keeps computing while the host merges.

How many images: the features are 2048-d, so with fewer than 2048 images per set the covariance
is rank-deficient and the matrix square root is ill-conditioned; FID is also biased upwards at
small N. Values are comparable only at the same N; published FIDs use 10k-50k images. `result()`
warns under 2048.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from scipy import linalg

from jaxcolor.core.errors import JaxcolorError
from jaxcolor.evaluation.inception import FEATURE_DIM, FIDInceptionV3, load_fid_inception

# Below this many images per set the 2048x2048 covariance cannot have full rank.
MIN_IMAGES = FEATURE_DIM


def _range(value_range: Any) -> tuple[float, float]:
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return lo, hi


class FidError(JaxcolorError, ValueError):
    """FID cannot be computed from what was accumulated (too few images); says what to change."""


def batch_moments(features: jax.Array, mask: jax.Array) -> tuple[jax.Array, ...]:
    """(B, D) features, (B,) validity mask -> (count, mean (D,), centred scatter (D, D)) of the
    valid rows, float32; jittable (the rows of padded batch entries are masked out)."""
    weights = mask.astype(jnp.float32)[:, None]
    count = jnp.sum(weights)
    mean = jnp.sum(features * weights, axis=0) / jnp.maximum(count, 1.0)
    centred = (features - mean) * weights
    scatter = jnp.matmul(centred.T, centred, precision=jax.lax.Precision.HIGHEST)
    return count, mean, scatter


@functools.cache
def _jitted(graphdef: nnx.GraphDef, mesh: Mesh | None) -> tuple[Callable, Callable]:
    """(features, image moments) jitted for one network and mesh, shared by all accumulators.

    With a mesh the moments come back replicated, so every process can read them.
    """

    def features(state: nnx.State, images: jax.Array, value_range: tuple[float, float]):
        return nnx.merge(graphdef, state)(images, value_range=value_range).astype(jnp.float32)

    def moments(state, images, mask, value_range):
        return batch_moments(features(state, images, value_range), mask)

    replicated = None if mesh is None else NamedSharding(mesh, P())
    return (
        jax.jit(features, static_argnames="value_range"),
        jax.jit(moments, static_argnames="value_range", out_shardings=replicated),
    )


class RunningStatistics:
    """Count, mean and covariance of feature vectors, merged batch by batch in float64."""

    def __init__(self):
        self.count = 0.0
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None

    def add_moments(self, count: Any, mean: Any, scatter: Any) -> None:
        """Merges one batch's (count, mean, centred scatter) (Chan, Golub & LeVeque 1979)."""
        n_b = float(np.asarray(count))
        if n_b == 0:
            return
        mean_b = np.asarray(mean, np.float64)
        scatter_b = np.asarray(scatter, np.float64)
        if self._mean is None:
            self.count, self._mean, self._scatter = n_b, mean_b, scatter_b
            return
        if mean_b.shape != self._mean.shape:
            raise ValueError(
                f"features of dimension {mean_b.shape[0]} merged into statistics of dimension "
                f"{self._mean.shape[0]}"
            )
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def add_features(self, features: Any, mask: Any = None) -> None:
        """Merges a (B, D) array of features computed elsewhere (host float64 path)."""
        features = np.asarray(features, np.float64)
        if mask is not None:
            features = features[np.asarray(mask, bool)]
        if len(features) == 0:
            return
        mean = features.mean(axis=0)
        centred = features - mean
        self.add_moments(len(features), mean, centred.T @ centred)

    @property
    def mean(self) -> np.ndarray:
        if self._mean is None:
            raise FidError("no images were accumulated, so there is no mean feature vector")
        return self._mean

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased (N - 1) covariance, as pytorch-fid's np.cov(act, rowvar=False)."""
        if self.count < 2:
            raise FidError(
                f"a covariance needs at least 2 images, got {int(self.count)}; evaluate on more "
                f"images (at least {MIN_IMAGES} for a meaningful FID)"
            )
        return self._scatter / (self.count - 1)

    def save_npz(self, path: str | pathlib.Path) -> None:
        """pytorch-fid's statistics file format (`mu`, `sigma`), e.g. to cache real-image stats."""
        np.savez(path, mu=self.mean, sigma=self.covariance)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as pytorch-fid's calculate_frechet_distance.

    Same numerics: scipy.linalg.sqrtm of S1 S2; if that is not finite (a singular product), eps is
    added to both diagonals and the root taken again; an imaginary part on the diagonal above 1e-3
    raises ValueError, a smaller one is dropped.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different lengths: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"covariances have different shapes: {sigma1.shape} vs {sigma2.shape}")

    diff = mu1 - mu2
    # `disp=False` (pytorch-fid) is deprecated in SciPy 1.17; failure shows as non-finite values.
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        logging.warning(
            "fid calculation produces singular product; adding %s to diagonal of cov estimates", eps
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))

    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real

    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FidAccumulator:
    """FID of generated vs real images, fed batch by batch (the evaluator's API).

        fid = FidAccumulator.from_weights(args.fid_weights)   # or FidAccumulator(model)
        for batch in ...:
            fid.update(real_batch, fake_batch)                # (B, H, W, 3) in [-1, 1]
        value = fid.result()

    Batches may be host arrays or global jax arrays sharded over `mesh` (pass the mesh so the
    weights are replicated on it once); any H, W (resized to 299), float or uint8. `value_range`
    is the range of the pixel values, per accumulator or per call (`update_real(batch["color"],
    value_range=(0, 255))`). `mask` ((B,) bool, for the global batch) leaves out padded entries
    of a last, partial batch.
    """

    def __init__(
        self,
        model: FIDInceptionV3,
        *,
        value_range: tuple[float, float] = (-1.0, 1.0),
        mesh: Mesh | None = None,
    ):
        graphdef, state = nnx.split(model)
        if mesh is not None:  # weights replicated once, not re-sent with every sharded batch
            state = jax.device_put(state, NamedSharding(mesh, P()))
        self._state = state
        self._features, self._moments = _jitted(graphdef, mesh)
        self.value_range = _range(value_range)
        self.real = RunningStatistics()
        self.fake = RunningStatistics()
        self._pending: list[tuple[RunningStatistics, tuple[jax.Array, ...]]] = []

    @classmethod
    def from_weights(cls, path: str | pathlib.Path, **kwargs: Any) -> FidAccumulator:
        """From the user's Inception weights file (see inception.load_fid_inception)."""
        return cls(load_fid_inception(path), **kwargs)

    def features(self, images: Any, value_range: tuple[float, float] | None = None) -> jax.Array:
        """(B, H, W, 3) images in `value_range` -> (B, 2048) pool3 features (jitted)."""
        vr = self.value_range if value_range is None else _range(value_range)
        return self._features(self._state, jnp.asarray(images), vr)

    def _add(self, stats: RunningStatistics, images: Any, mask: Any, value_range: Any) -> None:
        images = jnp.asarray(images)
        mask = np.ones(images.shape[:1], bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != images.shape[:1]:
            raise ValueError(f"mask shape {mask.shape} does not match the batch {images.shape}")
        vr = self.value_range if value_range is None else _range(value_range)
        if isinstance(images.sharding, NamedSharding):  # the mask follows the batch
            mask = jax.make_array_from_callback(
                mask.shape,
                NamedSharding(images.sharding.mesh, P(*images.sharding.spec[:1])),
                lambda index: mask[index],
            )
        moments = self._moments(self._state, images, mask, vr)
        for x in moments:
            x.copy_to_host_async()
        self._pending.append((stats, moments))
        while len(self._pending) > 2:  # keep the newest real + fake in flight
            self._fold_one()

    def _fold_one(self) -> None:
        stats, moments = self._pending.pop(0)
        stats.add_moments(*(np.asarray(x) for x in moments))

    def _flush(self) -> None:
        while self._pending:
            self._fold_one()

    def update_real(self, images: Any, mask: Any = None, value_range: Any = None) -> None:
        """Adds real images; `value_range` overrides the accumulator's, e.g. (0, 255) for uint8."""
        self._add(self.real, images, mask, value_range)

    def update_fake(self, images: Any, mask: Any = None, value_range: Any = None) -> None:
        """Adds generated images; `value_range` as in update_real."""
        self._add(self.fake, images, mask, value_range)

    def update(self, real: Any, fake: Any, mask: Any = None) -> None:
        """Adds one batch of real and one of generated images ((B, H, W, 3) in value_range)."""
        self.update_real(real, mask)
        self.update_fake(fake, mask)

    def statistics(self) -> tuple[RunningStatistics, RunningStatistics]:
        """(real, fake) statistics with every submitted batch merged."""
        self._flush()
        return self.real, self.fake

    def result(self) -> float:
        """FID between everything accumulated so far (warns under 2048 images per set)."""
        real, fake = self.statistics()
        fewest = min(real.count, fake.count)
        if fewest < 2:
            raise FidError(
                f"FID needs at least 2 real and 2 generated images, got {int(real.count)} and "
                f"{int(fake.count)}; evaluate on more images (at least {MIN_IMAGES} for a "
                f"meaningful FID)"
            )
        if fewest < MIN_IMAGES:
            logging.warning(
                "FID from %d real and %d generated images: under %d images the %d-d feature "
                "covariance is rank-deficient and FID is biased upwards; compare values only at "
                "the same image count (published FIDs use 10k-50k images).",
                real.count,
                fake.count,
                MIN_IMAGES,
                FEATURE_DIM,
            )
        return frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)

    def reset(self) -> None:
        self._pending.clear()
        self.real, self.fake = RunningStatistics(), RunningStatistics()

"""pix2pix's ImagePool as a fixed-shape ring buffer in the train state, queried inside the jit.

pix2pix (`util/image_pool.py`) walks the batch one image at a time: while the pool holds fewer
than `_pool_size` images it stores the image and returns it; once full, with probability 0.5 it
returns a random stored image and stores the new one in its slot, else returns the new one.
`query` computes exactly that sequential result for the whole batch at once: for each example,
its position in the sequence (`count + j`) says whether it fills a slot or may swap, and a swap
that picks a slot already written earlier in the same batch returns that earlier fake, as the
sequential loop would.

The pool holds the discriminator's fake input (condition ++ fake) as uint8 via
round((x + 1) * 127.5): the condition comes from uint8 images, so it round-trips exactly; the
fake is quantised to the 1/127.5 grid of the real images (error <= 1/255). That is 4x smaller
than float32: 50 x 512 x 512 x 16 channels is 210 MB per device instead of 839 MB.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from jaxcolor.core.image_size import image_hw


@flax.struct.dataclass
class ImagePool:
    """`images` uint8 (size, H, W, C); `count` int32 () = slots filled so far (<= size)."""

    images: jax.Array
    count: jax.Array


def _pool_size(config: ml_collections.ConfigDict) -> int:
    """`model.image_pool.size` (0: no pool)."""
    return int(config.model.image_pool.size)


def create(config: ml_collections.ConfigDict, channels: int) -> ImagePool | None:
    """An empty pool of `model.image_pool.size` fake pairs, or None when that is 0."""
    size = _pool_size(config)
    if size == 0 or config.loss.gan_mode == "none":
        return None
    h, w = image_hw(config)
    return ImagePool(
        images=jnp.zeros((size, h, w, channels), jnp.uint8), count=jnp.zeros((), jnp.int32)
    )


def encode(x: jax.Array) -> jax.Array:
    """[-1, 1] float -> uint8 (exact for values that came from uint8 via x / 127.5 - 1)."""
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def decode(x: jax.Array) -> jax.Array:
    """uint8 -> float32 in [-1, 1], the same formula as the step's input normalisation."""
    return x.astype(jnp.float32) / 127.5 - 1.0


def draws(key: jax.Array, batch: int, size: int, prob: float) -> tuple[jax.Array, jax.Array]:
    """(swap coin per example: True with probability `prob`, random slot per example)."""
    coin_key, slot_key = jax.random.split(key)
    coin = jax.random.uniform(coin_key, (batch,)) < prob
    slot = jax.random.randint(slot_key, (batch,), 0, size)
    return coin, slot


def apply(
    pool: ImagePool, images: jax.Array, coin: jax.Array, rand_slot: jax.Array
) -> tuple[ImagePool, jax.Array, jax.Array]:
    """The sequential pix2pix query for given draws -> (pool, returned images, from_pool mask).

    `images` is float (B, H, W, C) in [-1, 1]; returned stored images are decoded to float32,
    the others are `images` unchanged.
    """
    b, size = images.shape[0], pool.images.shape[0]
    order = jnp.arange(b)
    position = pool.count + order
    filling = position < size
    from_pool = jnp.logical_and(~filling, coin)
    slot = jnp.where(filling, position, rand_slot)
    writes = jnp.logical_or(filling, from_pool)  # every filling or swapping example is stored

    same_slot = (slot[:, None] == slot[None, :]) & writes[None, :]
    # The latest earlier example of this batch that wrote my slot (-1: none, the pool's image).
    earlier = jnp.max(jnp.where(same_slot & (order[None, :] < order[:, None]), order, -1), 1)
    later = jnp.any(same_slot & (order[None, :] > order[:, None]), 1)

    encoded = encode(images)
    stored = jnp.where(
        (earlier >= 0)[:, None, None, None],
        encoded[jnp.maximum(earlier, 0)],
        pool.images[slot],
    )
    returned = jnp.where(from_pool[:, None, None, None], decode(stored), images)
    # Only the last writer of a slot lands; the rest scatter out of bounds and are dropped.
    target = jnp.where(writes & ~later, slot, size)
    new_images = pool.images.at[target].set(encoded, mode="drop")
    new_pool = ImagePool(images=new_images, count=jnp.minimum(pool.count + b, size))
    return new_pool, returned.astype(images.dtype), from_pool


def query(
    pool: ImagePool, images: jax.Array, key: jax.Array, prob: float = 0.5
) -> tuple[ImagePool, jax.Array, jax.Array]:
    """pix2pix's `ImagePool.query` for a batch -> (new pool, images for D, from_pool mask)."""
    coin, slot = draws(key, images.shape[0], pool.images.shape[0], prob)
    return apply(pool, images, coin, slot)

"""Device (JAX) forms of the hint methods of jaxcolor.data.hints, for deriving hints inside the
jitted steps: the host ships the uint8 colour crop (plus, for points/strokes/scribbles, a small
fixed-size int32 array of host-sampled geometry and colours, see `HintSpec.sample`) and these
turn it into the same channels the host method draws.

Every form is written for ONE example and vmapped by the caller:

    fn(rgb uint8 (H, W, 3), sample int32 (N, F) or None, key) -> uint8 (H, W, C)

All shapes are static and nothing branches on traced values, so each works under jax.jit and
jax.vmap. How close each is to the host (measured in tests/test_device_hints.py):
- blur: the host's area-downscale / Gaussian / bilinear-upscale mirrored with the same sizes,
  kernels, borders and roundings; within 1-2 grey levels of the host (OpenCV's fixed-point
  kernels round differently).
- palette: exact.
- points: exact (boxes, later ones win).
- strokes, scribbles: OpenCV's thick LINE_8 polyline (a filled convex quadrilateral per
  segment walked scanline by scanline in 16.16 fixed point, its outline, and filled midpoint
  circles at the vertices; Bresenham for 1 px strokes) evaluated per pixel of a small window
  around each segment; the colours are the host's own (sampled on the host); the masks agree
  with cv2.polylines up to rare rounding differences (IoU >= 0.968 per image, mean 0.999, over
  240 SyntheticCartoonSource draws at 256x256 and 96x128).
Points and strokes combine their shapes with one scatter-max of the shape index (later shapes
win), so nothing runs sequentially per shape.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor.data import hints as host

_HIGHEST = jax.lax.Precision.HIGHEST

# ---------------------------------------------------------------------------------------------
# blur: hints._gaussian_blur as separable linear maps, each followed by the host's rounding to
# uint8 (cv2.resize INTER_AREA, cv2.GaussianBlur and cv2.resize INTER_LINEAR each round once).


def _round_u8(x: jax.Array) -> jax.Array:
    """OpenCV's saturate_cast<uchar> of a float: round half up, clamp to 0..255 (kept float)."""
    return jnp.clip(jnp.floor(x + 0.5), 0.0, 255.0)


def _reflect101(p: int, n: int) -> int:
    """cv2.borderInterpolate(p, n, BORDER_REFLECT_101)."""
    if n == 1:
        return 0
    while not 0 <= p < n:
        p = -p if p < 0 else 2 * (n - 1) - p
    return p


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n): cv2.GaussianBlur along one axis of length n for a uint8 image (kernel size
    round(6 sigma + 1) | 1, BORDER_REFLECT_101)."""
    ksize = int(np.rint(sigma * 3 * 2 + 1)) | 1
    r = (ksize - 1) // 2
    taps = np.exp(-((np.arange(ksize) - r) ** 2) / (2 * sigma * sigma))
    taps /= taps.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for k in range(ksize):
            m[i, _reflect101(i + k - r, n)] += taps[k]
    return m


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src): cv2.resize INTER_AREA along one axis when shrinking (each output is the mean
    of the input cells it covers, partial cells weighted by their share)."""
    scale = src / dst
    m = np.zeros((dst, src))
    for d in range(dst):
        lo, hi = d * scale, min((d + 1) * scale, src)
        for s in range(int(math.floor(lo)), int(math.ceil(hi))):
            m[d, s] = min(hi, s + 1) - max(lo, s)
    return m / m.sum(axis=1, keepdims=True)


def _linear_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src): cv2.resize INTER_LINEAR along one axis (half-pixel centres, clamped)."""
    scale = src / dst
    m = np.zeros((dst, src))
    for d in range(dst):
        fx = (d + 0.5) * scale - 0.5
        sx = math.floor(fx)
        fx -= sx
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= src - 1:
            sx, fx = src - 1, 0.0
        m[d, sx] += 1 - fx
        if fx:
            m[d, sx + 1] += fx
    return m


@functools.lru_cache(maxsize=32)
def _blur_maps(h: int, w: int, sigma: float):
    """The host blur at (h, w) as (f, area_h, area_w, gauss_h, gauss_w, up_h, up_w): float32
    matrices (None where the step is skipped or done by a reshape-mean)."""
    f = max(1, int(sigma // 5))
    if f == 1:
        return 1, None, None, _gaussian_matrix(h, sigma), _gaussian_matrix(w, sigma), None, None
    sw, sh = max(1, round(w / f)), max(1, round(h / f))
    small_sigma = math.sqrt(sigma**2 - f * f / 12.0) / f
    area_h = None if sh * f == h else _area_matrix(h, sh)
    area_w = None if sw * f == w else _area_matrix(w, sw)
    return (
        f,
        area_h,
        area_w,
        _gaussian_matrix(sh, small_sigma),
        _gaussian_matrix(sw, small_sigma),
        _linear_matrix(sh, h),
        _linear_matrix(sw, w),
    )


def _apply(m_h, m_w, x: jax.Array) -> jax.Array:
    """m_h (a, h) and m_w (b, w) applied to x (h, w, c) -> (a, b, c), in float32."""
    x = jnp.einsum("ah,hwc->awc", jnp.asarray(m_h, jnp.float32), x, precision=_HIGHEST)
    return jnp.einsum("bw,awc->abc", jnp.asarray(m_w, jnp.float32), x, precision=_HIGHEST)


def _area_downscale(x: jax.Array, f: int, area_h, area_w) -> jax.Array:
    """INTER_AREA by f: a reshape-mean along an axis that f divides, a weight matrix otherwise."""
    h, w, c = x.shape
    if area_h is None:
        x = x.reshape(h // f, f, w, c).mean(axis=1)
    else:
        x = jnp.einsum("ah,hwc->awc", jnp.asarray(area_h, jnp.float32), x, precision=_HIGHEST)
    if area_w is None:
        x = x.reshape(x.shape[0], w // f, f, c).mean(axis=2)
    else:
        x = jnp.einsum("bw,awc->abc", jnp.asarray(area_w, jnp.float32), x, precision=_HIGHEST)
    return x


def blur_image(rgb: jax.Array, *, sigma_at_256: float = host.BLUR_SIGMA_AT_256) -> jax.Array:
    """hints.blur_hints on device: uint8 (H, W, 3) -> uint8 (H, W, 3)."""
    h, w = rgb.shape[:2]
    f, area_h, area_w, gauss_h, gauss_w, up_h, up_w = _blur_maps(
        h, w, host.blur_sigma((h, w), sigma_at_256)
    )
    x = rgb.astype(jnp.float32)
    if f > 1:
        x = _round_u8(_area_downscale(x, f, area_h, area_w))
    x = _round_u8(_apply(gauss_h, gauss_w, x))
    if f > 1:
        x = _round_u8(_apply(up_h, up_w, x))
    return x.astype(jnp.uint8)


def blur(rgb: jax.Array, sample: jax.Array | None, key: jax.Array) -> jax.Array:
    """Device form of `blur` (deterministic: sample and key are unused)."""
    del sample, key
    return blur_image(rgb)


# ---------------------------------------------------------------------------------------------
# palette: exact. Per band a 32768-bin histogram of the quantised colours; lax.top_k keeps the
# lower index (the smaller r, g, b key) first on ties, as the host's stable argsort does.


def _band_of_row(h: int) -> np.ndarray:
    """int32 (h,): each row's band, the bands split as np.array_split does."""
    bands = np.array_split(np.arange(h), host.PALETTE_BANDS)
    return np.concatenate([np.full(len(rows), b) for b, rows in enumerate(bands)]).astype(np.int32)


def palette_colors(rgb: jax.Array) -> jax.Array:
    """hints.palette_colors on device: uint8 (PALETTE_BANDS, PALETTE_TOP, 3)."""
    h = rgb.shape[0]
    levels, step = host.PALETTE_LEVELS, 256 // host.PALETTE_LEVELS
    q = rgb.astype(jnp.int32) // step
    keys = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    band_of_row = _band_of_row(h)
    bins = levels**3
    ids = (jnp.asarray(band_of_row)[:, None] * bins + keys).reshape(-1)
    counts = jnp.zeros(host.PALETTE_BANDS * bins, jnp.int32).at[ids].add(1)
    counts = counts.reshape(host.PALETTE_BANDS, bins)
    top_counts, top = jax.lax.top_k(counts, host.PALETTE_TOP)
    top = jnp.where(top_counts > 0, top, top[:, :1])  # missing ones repeat the most frequent
    rgb_levels = jnp.stack([top // levels**2, (top // levels) % levels, top % levels], axis=-1)
    return (rgb_levels * step + step // 2).astype(jnp.uint8)


def palette(rgb: jax.Array, sample: jax.Array | None, key: jax.Array) -> jax.Array:
    """Device form of `palette` (deterministic): uint8 (H, W, 3 * PALETTE_TOP)."""
    del sample, key
    h, w = rgb.shape[:2]
    colors = palette_colors(rgb).reshape(host.PALETTE_BANDS, -1)
    rows = colors[jnp.asarray(_band_of_row(h))]  # (H, 3 * PALETTE_TOP)
    return jnp.broadcast_to(rows[:, None, :], (h, w, rows.shape[-1]))


# ---------------------------------------------------------------------------------------------
# points: exact. The sample rows are hints.point_sample's (top, left, bottom, right, r, g, b,
# used); each pixel takes the colour of the last used box holding it.


def _paint_last(winner: jax.Array, colors: jax.Array) -> jax.Array:
    """winner int32 (H, W) (-1: none) and colors (N, 3) -> uint8 (H, W, 4) R, G, B, mask."""
    table = jnp.concatenate(
        [
            jnp.concatenate([colors, jnp.full((colors.shape[0], 1), host.MASK_ON)], axis=1),
            jnp.zeros((1, 4), colors.dtype),
        ]
    ).astype(jnp.uint8)
    return table[jnp.where(winner < 0, colors.shape[0], winner)]


def _last_drawn(hw, masks, origins, index) -> jax.Array:
    """int32 (H, W): for each pixel the largest `index` (N,) whose window mask (N, Sy, Sx),
    placed at origins (N, 2) (top, left, inside the image), covers it; -1 where none does. One
    scatter-max, so later shapes win without a sequential loop."""
    sy, sx = masks.shape[1:]
    ys = origins[:, 0, None, None] + jnp.arange(sy)[None, :, None]
    xs = origins[:, 1, None, None] + jnp.arange(sx)[None, None, :]
    values = jnp.where(masks, index[:, None, None], -1)
    return jnp.full(hw, -1, jnp.int32).at[ys, xs].max(values, mode="promise_in_bounds")


def _window_origin(lo: jax.Array, margin: int, size: int, limit: int) -> jax.Array:
    """The start of a `size` window holding lo - margin .., kept inside 0 .. limit."""
    return jnp.clip(lo - margin, 0, limit - size)


def points(rgb: jax.Array, sample: jax.Array, key: jax.Array) -> jax.Array:
    """Device form of `points`: the boxes of `sample` (hints.point_sample) -> uint8 (H, W, 4).
    Each box is tested in a window of the largest patch side (hints.POINT_SIZES) at its corner."""
    del key
    h, w = rgb.shape[:2]
    sy, sx = min(host.POINT_SIZES[1], h), min(host.POINT_SIZES[1], w)
    s = sample.astype(jnp.int32)
    top, left, bottom, right, used = s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 7] > 0
    origins = jnp.stack([_window_origin(top, 0, sy, h), _window_origin(left, 0, sx, w)], -1)
    ys = origins[:, 0, None] + jnp.arange(sy)[None]
    xs = origins[:, 1, None] + jnp.arange(sx)[None]
    in_rows = (ys >= top[:, None]) & (ys < bottom[:, None]) & used[:, None]
    in_cols = (xs >= left[:, None]) & (xs < right[:, None])
    masks = in_rows[:, :, None] & in_cols[:, None, :]
    winner = _last_drawn((h, w), masks, origins, jnp.arange(s.shape[0]))
    return _paint_last(winner, s[:, 4:7])


# ---------------------------------------------------------------------------------------------
# strokes: cv2.polylines(thickness=t, LINE_8) per pixel. OpenCV draws each segment of a thick
# polyline as (1) the quadrilateral p0 +- dp, p1 -+ dp (dp: the normal scaled to t/2, + 1/2 for
# odd t, rounded to 1/65536 px) filled by FillConvexPoly: scanlines from the top vertex's rounded
# y to the bottom one's (exclusive), each edge walked from its upper vertex's exact x with a
# per-scanline step rounded to 1/65536, pixels round(left x) .. round(right x); (2) the
# quadrilateral's outline by the sub-pixel line Line2; (3) a filled midpoint circle of radius
# (t + 1) // 2 at each vertex. A 1 px polyline is Bresenham's line between the integer vertices.
# Each rule below is that, evaluated for every pixel at once.

_ONE = 1 << 16
_HALF = _ONE >> 1


def _circle_spans(max_radius: int) -> np.ndarray:
    """int32 (max_radius + 1, max_radius + 1): OpenCV's filled Circle of radius r covers row
    offset dy over |dx| <= spans[r, dy] (-1: not at all)."""
    spans = np.full((max_radius + 1, max_radius + 1), -1, np.int32)
    for r in range(max_radius + 1):
        err, dx, dy, plus, minus = 0, r, 0, 1, 2 * r - 1
        while dx >= dy:
            spans[r, dy] = max(spans[r, dy], dx)
            spans[r, dx] = max(spans[r, dx], dy)
            dy += 1
            err += plus
            plus += 2
            if err > 0:
                err -= minus
                dx -= 1
                minus -= 2
    return spans


_MAX_RADIUS = 64
_CIRCLE_SPANS = _circle_spans(_MAX_RADIUS)


def _floor_div(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.floor_divide(a, b)


def _trunc_div(a: jax.Array, b: jax.Array) -> jax.Array:
    """C integer division (rounds toward zero)."""
    return jax.lax.div(a, b)


def _bresenham(p0: jax.Array, p1: jax.Array, ys: jax.Array, xs: jax.Array) -> jax.Array:
    """bool (H, W): cv2.line(p0, p1, thickness=1, LINE_8) between integer points (x, y): from the
    left end, the minor coordinate at major step k is ceil(k * dmin / dmaj - 1/2) away."""
    swap = (p1[0] < p0[0]) | ((p1[0] == p0[0]) & (p1[1] < p0[1]))
    a = jnp.where(swap, p1, p0)
    b = jnp.where(swap, p0, p1)
    dx, dy = b[0] - a[0], b[1] - a[1]  # dx >= 0
    ady = jnp.abs(dy)
    sy = jnp.where(dy < 0, -1, 1)
    x_major = dx >= ady
    dmaj = jnp.maximum(jnp.where(x_major, dx, ady), 1)
    dmin = jnp.where(x_major, ady, dx)
    k = jnp.where(x_major, xs[None, :] - a[0], (ys[:, None] - a[1]) * sy)
    # ceil((2 k dmin - dmaj) / (2 dmaj)) = -floor((dmaj - 2 k dmin) / (2 dmaj))
    minor = -_floor_div(dmaj - 2 * k * dmin, 2 * dmaj)
    on_x_major = (ys[:, None] - a[1]) == sy * minor
    on_y_major = (xs[None, :] - a[0]) == minor
    span = jnp.where(x_major, dx, ady)
    return (k >= 0) & (k <= span) & jnp.where(x_major, on_x_major, on_y_major)


def _line2(a: jax.Array, b: jax.Array, ys: jax.Array, xs: jax.Array) -> jax.Array:
    """bool (H, W): OpenCV's Line2 between 16.16 fixed-point points a, b (x, y): from the left
    (top) end, major pixel floor(start + 1/2) + k, minor floor(start + 1/2 + k * slope), and the
    rounded end point."""
    d = b - a
    ax, ay = jnp.abs(d[0]), jnp.abs(d[1])
    x_major = ax > ay
    swap = jnp.where(x_major, d[0] < 0, d[1] < 0)
    p = jnp.where(swap, b, a)
    q = jnp.where(swap, a, b)
    maj = jnp.where(x_major, 0, 1)
    p_maj, p_min = p[maj], p[1 - maj]
    d_maj, d_min = q[maj] - p_maj, q[1 - maj] - p_min
    # (d_min << 16) / (d_maj | 1), truncated: |d_min| < 2^24, so through float32 it is off by at
    # most one 1/65536 step.
    step = jnp.trunc(d_min.astype(jnp.float32) * _ONE / (d_maj | 1).astype(jnp.float32))
    step = step.astype(jnp.int32)
    count = d_maj >> 16
    first = (p_maj + _HALF) >> 16
    k_x, k_y = xs[None, :] - first, ys[:, None] - first
    k = jnp.where(x_major, k_x, k_y)
    minor = (p_min + _HALF + k * step) >> 16
    on = jnp.where(x_major, ys[:, None] == minor, xs[None, :] == minor)
    end = (ys[:, None] == (q[1] + _HALF) >> 16) & (xs[None, :] == (q[0] + _HALF) >> 16)
    return ((k >= 0) & (k <= count) & on) | end


def _quad_fill(corners: jax.Array, ys: jax.Array, xs: jax.Array) -> jax.Array:
    """bool (H, W): FillConvexPoly of 4 fixed-point corners (4, 2) with LINE_8."""
    ya = (corners[:, 1] + _HALF) >> 16  # the vertices' scanlines
    nxt = jnp.roll(corners, -1, axis=0)
    yb = jnp.roll(ya, -1)
    down = ya <= yb
    top_x = jnp.where(down, corners[:, 0], nxt[:, 0])
    bot_x = jnp.where(down, nxt[:, 0], corners[:, 0])
    y0, y1 = jnp.minimum(ya, yb), jnp.maximum(ya, yb)
    rows = jnp.maximum(y1 - y0, 1)
    dx = _trunc_div((bot_x - top_x) * 2 + rows, 2 * rows)
    y = ys[:, None]  # (H, 1) against the 4 edges
    active = (y >= y0[None]) & (y < y1[None])
    x = top_x[None] + (y - y0[None]) * dx[None]
    left = jnp.min(jnp.where(active, x, jnp.iinfo(jnp.int32).max), axis=1)
    right = jnp.max(jnp.where(active, x, jnp.iinfo(jnp.int32).min), axis=1)
    any_edge = jnp.any(active, axis=1)
    lo = (left + _HALF) >> 16
    hi = (right + _HALF) >> 16
    return any_edge[:, None] & (xs[None, :] >= lo[:, None]) & (xs[None, :] <= hi[:, None])


def _thick_segment(p0, p1, width, ys, xs) -> jax.Array:
    """bool (H, W): the quadrilateral and outline of one thick segment (no end circles)."""
    a, b = p0 * _ONE, p1 * _ONE
    d = (p1 - p0).astype(jnp.float32)
    length = jnp.sqrt(jnp.sum(d * d))
    half = (width * (_ONE // 2) + (width & 1) * _HALF).astype(jnp.float32)
    r = half / jnp.maximum(length, 1e-6)
    dp = jnp.stack([jnp.round(d[1] * r), jnp.round(-d[0] * r)]).astype(jnp.int32)
    corners = jnp.stack([a + dp, a - dp, b - dp, b + dp])
    outline = jax.vmap(lambda a, b: _line2(a, b, ys, xs))(corners, jnp.roll(corners, -1, axis=0))
    return (_quad_fill(corners, ys, xs) | jnp.any(outline, axis=0)) & (length > 0)


def _disc(center, radius, ys, xs) -> jax.Array:
    dy = jnp.abs(ys[:, None] - center[1])
    span = jnp.asarray(_CIRCLE_SPANS)[radius, jnp.minimum(dy, _MAX_RADIUS)]
    return (dy <= radius) & (jnp.abs(xs[None, :] - center[0]) <= span)


def _segment_mask(p0, p1, width, ys, xs) -> jax.Array:
    """bool (len(ys), len(xs)): one polyline segment p0 -> p1 (x, y) `width` px wide as
    cv2.polylines draws it, with the end circles of a thick line, over pixels ys x xs."""
    radius = jnp.clip((width + 1) // 2, 0, _MAX_RADIUS)
    thick = (
        _thick_segment(p0, p1, width, ys, xs)
        | _disc(p0, radius, ys, xs)
        | _disc(p1, radius, ys, xs)
    )
    return jnp.where(width > 1, thick, _bresenham(p0, p1, ys, xs))


def _stroke_window(
    hw: tuple[int, int], extent: int | None, max_width: int | None
) -> tuple[int, int, int]:
    """(rows, cols, margin) of the window a segment spanning at most `extent` px per axis,
    drawn at most `max_width` px wide, fits in (a line reaches radius + 1 px beyond its centre
    line). None: hints.sample_strokes' bounds, a step of at most STROKE_STEP[1] of the shorter
    side (+ 1 px: its end points are rounded) and its widest stroke."""
    scale = min(hw) / host.REFERENCE_SIZE
    if extent is None:
        extent = math.ceil(host.STROKE_STEP[1] * min(hw)) + 1
    if max_width is None:
        max_width = max(1, round(host.STROKE_WIDTH[1] * scale))
    margin = (max_width + 1) // 2 + 2
    size = extent + 2 * margin
    return min(size, hw[0]), min(size, hw[1]), margin


def render_strokes(
    sample: jax.Array,
    hw: tuple[int, int],
    extent: int | None = None,
    max_width: int | None = None,
) -> jax.Array:
    """hints.stroke_sample rows -> uint8 (H, W, 4) R, G, B, mask; later strokes win. Each
    segment is drawn in a window around it, all at once: `extent` and `max_width` bound the
    segments' extent per axis and width (None: those of hints.sample_strokes at `hw`; pass
    max(hw) and the widest width for arbitrary polylines). Parts beyond the window are lost."""
    s = sample.astype(jnp.int32)
    n = s.shape[0]
    k = host.STROKE_POINTS
    pts = s[:, 1 : 1 + 2 * k].reshape(n, k, 2)
    width = s[:, 1 + 2 * k]
    p0, p1 = pts[:, :-1].reshape(-1, 2), pts[:, 1:].reshape(-1, 2)
    segment = jnp.arange(k - 1)[None, :] + 1 < s[:, :1]  # segment j joins points j, j + 1
    drawn = (segment & (s[:, -1:] > 0)).reshape(-1)
    widths = jnp.repeat(width, k - 1)
    sy, sx, margin = _stroke_window(hw, extent, max_width)
    origins = jnp.stack(
        [
            _window_origin(jnp.minimum(p0[:, 1], p1[:, 1]), margin, sy, hw[0]),
            _window_origin(jnp.minimum(p0[:, 0], p1[:, 0]), margin, sx, hw[1]),
        ],
        -1,
    )

    def one(a, b, t, origin, on):
        ys, xs = origin[0] + jnp.arange(sy), origin[1] + jnp.arange(sx)
        return _segment_mask(a, b, t, ys, xs) & on

    masks = jax.vmap(one)(p0, p1, widths, origins, drawn)
    winner = _last_drawn(hw, masks, origins, jnp.repeat(jnp.arange(n), k - 1))
    return _paint_last(winner, s[:, 2 + 2 * k : 5 + 2 * k])


def strokes(rgb: jax.Array, sample: jax.Array, key: jax.Array) -> jax.Array:
    """Device form of `strokes`: the polylines of `sample` (hints.stroke_sample) -> uint8
    (H, W, 4) R, G, B, mask."""
    del key
    return render_strokes(sample, rgb.shape[:2])


def on_paper(hints: jax.Array) -> jax.Array:
    """hints.scribbles_on_paper on device: R, G, B, mask -> R, G, B on white paper."""
    rgb, mask = hints[..., :3], hints[..., 3] == host.MASK_ON
    paper = ~mask | jnp.all(rgb > host.PAPER_LEVEL, axis=-1)
    return jnp.where(paper[..., None], jnp.uint8(255), rgb).astype(jnp.uint8)


def scribbles(rgb: jax.Array, sample: jax.Array, key: jax.Array) -> jax.Array:
    """Device form of `scribbles`: the strokes of `sample` on white paper, uint8 (H, W, 3)."""
    return on_paper(strokes(rgb, sample, key))


def none(rgb: jax.Array, sample: jax.Array | None, key: jax.Array) -> jax.Array:
    """Device form of `none`: no channels, uint8 (H, W, 0)."""
    del sample, key
    return jnp.zeros((*rgb.shape[:2], 0), jnp.uint8)

"""Colour hints that condition the generator, one function per `data.hints` method.

Generator input tensor (the one place this is written down; NHWC in JAX, NCHW in the PyTorch
export), built by `jaxcolor.nets.inputs.model_inputs` and `jaxcolor.inference`:

    channel 0                      the sketch: gray line art, dark lines on white (255 = paper)
    channels 1 .. HINT_CHANNELS    the hint channels of `data.hints`, in this order:
      blur     R, G, B             the colour image Gaussian-blurred (sigma 20 px at 256 px); at
                                   inference a user's strokes are spread into such a map
                                   (blur_hints_from_drawing)
      points   R, G, B, mask       square patches (1-9 px) of the patch-mean colour; 0 outside
      strokes  R, G, B, mask       scribbles, one colour each (taken under the stroke); 0 outside
      scribbles R, G, B            the same scribbles without a mask: drawn on white paper (255),
                                   as the UAN coloriser's 4-channel (sketch + RGB) U-Net takes them;
                                   near-white colours (all channels > PAPER_LEVEL) read as paper
      palette  R1,G1,B1 .. R4,G4,B4  4 planes: plane i holds, over each of 4 horizontal bands,
                                   that band's i-th most frequent (quantised) colour
      none     (nothing)           automatic colorization: the sketch alone

The host ships every channel as uint8; on device each becomes x / 127.5 - 1, so a colour of 0 and
"no hint" are told apart only by the mask: mask 255 (-> +1) marks a hint pixel, 0 (-> -1) a
pixel without one (whose colour channels are then 0 -> -1).

Every generator is `(rgb uint8 (H, W, 3), rng) -> uint8 (H, W, C)`; `blur` and `palette` ignore
the rng. Only numpy and OpenCV are imported: PyTorch inference (no JAX) uses these functions to
build the same inputs from a user's drawing.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from jaxcolor.nets.export_format import COLOR_CHANNELS, SKETCH_CHANNELS


def condition_channels(config: Mapping[str, Any]) -> int:
    """Generator input channels: the 1-channel sketch plus the hint channels; with
    task="sketch" the RGB colour image. `config` is a ConfigDict or its plain dict."""
    if config["task"] == "sketch":
        return COLOR_CHANNELS
    return SKETCH_CHANNELS + hint_spec(config["data"]["hints"]).channels


REFERENCE_SIZE = 256
MASK_ON = 255


def _check_rgb(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} expects an (H, W, 3) RGB image, got shape {image.shape}")


BLUR_SIGMA_AT_256 = 20.0  # "Deep Learning Color for Manga and Anime
# Sketches" (pix2pix with colour cues) blurs with a fixed 20 px at 256


def blur_sigma(hw: tuple[int, int], sigma_at_256: float = BLUR_SIGMA_AT_256) -> float:
    """The blur hints' Gaussian sigma in pixels at image size `hw`.

    Scaling with the shorter side keeps the cue equally coarse relative to the picture at any
    resolution.
    """
    return sigma_at_256 * min(hw) / REFERENCE_SIZE


def _gaussian(image: np.ndarray, sigma: float, radius: float | None) -> np.ndarray:
    ksize = (0, 0) if radius is None else (2 * math.ceil(radius * sigma) + 1,) * 2
    return cv2.GaussianBlur(image, ksize, sigma).reshape(image.shape)


def _gaussian_blur(image: np.ndarray, sigma: float, *, radius: float | None = None) -> np.ndarray:
    """A Gaussian blur of an (H, W, C) image by `sigma` px, fast for large sigma; keeps dtype.

    `radius`: where the kernel is cut, in sigmas (None: OpenCV's rule, 3 for uint8, 4 for
    float32).
    """
    # A 20 px Gaussian at full size costs ~12 ms. Area-downscaling by f (itself a box blur of
    # variance f^2/12), blurring the rest of the variance there and upscaling bilinearly is
    # ~25x cheaper and differs from it by < 1 grey level on average (max ~12, at the borders).
    h, w = image.shape[:2]
    f = max(1, int(sigma // 5))
    if f == 1:
        return _gaussian(image, sigma, radius)
    sw, sh = max(1, round(w / f)), max(1, round(h / f))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA).reshape(sh, sw, -1)
    small = _gaussian(small, math.sqrt(sigma**2 - f * f / 12.0) / f, radius)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


def blur_hints(
    image: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    sigma_at_256: float = BLUR_SIGMA_AT_256,
) -> np.ndarray:
    """Returns a heavily Gaussian-blurred copy of a uint8 RGB image as coarse colour cues."""
    del rng  # deterministic: a fixed sigma, as the seed
    _check_rgb(image, "blur_hints")
    return _gaussian_blur(image, blur_sigma(image.shape[:2], sigma_at_256))


# ---------------------------------------------------------------------------------------------
# points: Zhang et al. 2017, "Real-Time User-Guided Image Colorization with Learned Deep Priors"
# (section 3.2): the number of points is geometric, locations from a 2-D Gaussian centred on the
# image with sigma = side / 4, square patches of side 1-9 px revealing the patch's mean colour.
# N = Geometric(1/8) - 1 gives P(N = 0) = 1/8 (the share trained without any hint) and mean 7.
# One change for real images: a user clicks inside a colour region, so a patch that straddles an
# edge or a line (a pixel of the lightly smoothed image more than REGION_TOLERANCE from the
# patch's median on some channel) is shrunk, 2 px at a time, until it does not (down to 1 px).
# On real anime faces at 128 px this takes the mean error between a revealed colour and the
# true pixels under it from 21 to 4 (0-255; a drawn cartoon's flat regions are unaffected).
POINTS_P = 1.0 / 8.0
POINT_SIZES = (1, 9)  # inclusive, at any image size (they are a user's clicks, not regions)
# Point side used when rasterising `--hint_points` for inference (a mid-size training patch).
INFERENCE_POINT_SIZE = 3
# Largest channel difference (0-255) from a point's or stroke's reference colour that still
# counts as the same colour region, on the image smoothed by `_region_image` (JPEG noise and
# soft shading stay inside; lines and edges between regions do not).
REGION_TOLERANCE = 32


def _patch_box(y: int, x: int, size: int, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a size x size square centred on (y, x), kept inside hw."""
    h, w = hw
    size = min(size, h, w)
    top = min(max(y - (size - 1) // 2, 0), h - size)
    left = min(max(x - (size - 1) // 2, 0), w - size)
    return top, left, top + size, left + size


def _region_image(image: np.ndarray) -> np.ndarray:
    """The image as region tests see it: int32, Gaussian-smoothed (sigma 0.6 px at 128 px and
    below, scaled above) so that single noisy pixels do not end a region."""
    sigma = max(0.6, 0.6 * min(image.shape[:2]) / 128)
    return cv2.GaussianBlur(image, (0, 0), sigma).astype(np.int32)


def _one_region(pixels: np.ndarray, reference: np.ndarray) -> bool:
    """Whether every pixel (N, 3) is within REGION_TOLERANCE of `reference` on every channel."""
    return bool((np.abs(pixels - reference) <= REGION_TOLERANCE).all())


def _inside_region(smooth: np.ndarray, y: int, x: int, size: int) -> tuple[int, int, int, int]:
    """The largest box of side <= size centred on (y, x) that holds one colour region."""
    while True:
        top, left, bottom, right = _patch_box(y, x, size, smooth.shape[:2])
        patch = smooth[top:bottom, left:right].reshape(-1, 3)
        if size == 1 or _one_region(patch, np.median(patch, axis=0)):
            return top, left, bottom, right
        size = max(1, size - 2)


def sample_points(image: np.ndarray, rng: np.random.Generator) -> list[tuple]:
    """Zhang et al.'s revealed points, kept inside one colour region:
    [(top, left, bottom, right, (r, g, b)), ...]."""
    h, w = image.shape[:2]
    n = int(rng.geometric(POINTS_P)) - 1
    smooth = _region_image(image) if n else None
    points = []
    for _ in range(n):
        y = int(np.clip(round(rng.normal(h / 2, h / 4)), 0, h - 1))
        x = int(np.clip(round(rng.normal(w / 2, w / 4)), 0, w - 1))
        size = int(rng.integers(POINT_SIZES[0], POINT_SIZES[1] + 1))
        top, left, bottom, right = _inside_region(smooth, y, x, size)
        mean = image[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
        points.append((top, left, bottom, right, tuple(int(v) for v in np.round(mean))))
    return points


def render_points(points, hw: tuple[int, int]) -> np.ndarray:
    """Boxes [(top, left, bottom, right, rgb)] -> uint8 (H, W, 4) R, G, B, mask; later ones win."""
    out = np.zeros((*hw, 4), np.uint8)
    for top, left, bottom, right, rgb in points:
        out[top:bottom, left:right] = (*rgb, MASK_ON)
    return out


def point_hints(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """User-style point hints (see sample_points), uint8 (H, W, 4): R, G, B, mask."""
    _check_rgb(image, "point_hints")
    return render_points(sample_points(image, rng), image.shape[:2])


def points_from_clicks(clicks, hw: tuple[int, int], size: int = INFERENCE_POINT_SIZE) -> np.ndarray:
    """[(x, y, (r, g, b))] in pixels of `hw` -> point hints as training renders a patch."""
    boxes = [(*_patch_box(y, x, size, hw), rgb) for x, y, rgb in clicks]
    return render_points(boxes, hw)


# The points as a fixed-size array, for the device form (jaxcolor.data.device_hints.points):
# one row per point, (top, left, bottom, right, r, g, b, used), in drawing order; rows after
# the last point are 0 with used = 0. The count is Geometric(1/8) - 1, unbounded: an image
# with more than MAX_POINTS points (P = (7/8)^(MAX_POINTS + 1) = 3.3e-8 per image) keeps its
# last MAX_POINTS, the ones drawn on top.
MAX_POINTS = 128
POINT_FIELDS = 8


def points_to_array(points) -> np.ndarray:
    """sample_points' list -> int32 (MAX_POINTS, POINT_FIELDS) (see above)."""
    out = np.zeros((MAX_POINTS, POINT_FIELDS), np.int32)
    for row, (top, left, bottom, right, rgb) in zip(out, points[-MAX_POINTS:], strict=False):
        row[:] = (top, left, bottom, right, *rgb, 1)
    return out


def points_from_array(sample: np.ndarray) -> list[tuple]:
    """points_to_array's rows -> sample_points' list (the used rows)."""
    return [(*map(int, row[:4]), tuple(map(int, row[4:7]))) for row in sample if row[7]]


def point_sample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`points`' host sampler: sample_points as int32 (MAX_POINTS, POINT_FIELDS); the same draw
    as point_hints with the same rng."""
    _check_rgb(image, "point_sample")
    return points_to_array(sample_points(image, rng))


# ---------------------------------------------------------------------------------------------
# strokes: imitate a user's colour scribbles (the UAN anime-style image coloriser,
# vrobbin3247/UAN-based-anime-style-image-coloriser, has users draw strokes on a canvas over the
# sketch). P(no strokes) matches `points`; otherwise 1 + Geometric-ish count capped at
# MAX_STROKES. Each stroke is a gently curving random walk of up to 2-4 segments, STROKE_WIDTH
# px wide at 256 px (scaled), one flat colour. A user strokes inside one colour region, so the
# walk stays in the region of its starting pixel: a segment whose centre line leaves it (some
# pixel of the smoothed image more than REGION_TOLERANCE from the start's colour) is redrawn at
# another angle, up to STROKE_TRIES times, and the stroke ends where none fits. Its colour is
# the per-channel median of the ground truth under it (a region's colour, robust to the few
# pixels of a line it may touch). On real anime faces at 128 px, strokes that ignored regions
# and took the most frequent exact colour were 33 (0-255) from the true pixels under them on
# average; these are 5.
STROKES_P_NONE = 1.0 / 8.0
STROKES_P = 1.0 / 3.0  # count = min(Geometric(1/3), MAX_STROKES): mean about 3
MAX_STROKES = 10
STROKE_SEGMENTS = (2, 4)
STROKE_STEP = (0.04, 0.12)  # segment length as a share of the shorter side
STROKE_WIDTH = (2, 5)  # px at 256 px
STROKE_TRIES = 4  # angles tried for each segment before the stroke ends
# Inference: pixels of a drawn hint image whose channels are all above this count as paper.
PAPER_LEVEL = 245


def _median_color(pixels: np.ndarray) -> tuple[int, int, int]:
    r, g, b = np.round(np.median(pixels, axis=0)).astype(int)
    return int(r), int(g), int(b)


def stroke_mask(polyline: np.ndarray, width: int, hw: tuple[int, int]) -> np.ndarray:
    """A polyline (N, 2) of (x, y) drawn `width` px wide -> bool (H, W)."""
    mask = np.zeros(hw, np.uint8)
    cv2.polylines(mask, [polyline.astype(np.int32)], False, 1, thickness=width, lineType=cv2.LINE_8)
    return mask.astype(bool)


def _segment_pixels(smooth: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The smoothed image's pixels (N, 3) along the segment start -> end ((x, y) floats)."""
    n = int(math.ceil(np.abs(end - start).max())) + 1
    xy = np.round(start + (end - start) * np.linspace(0.0, 1.0, n)[:, None]).astype(int)
    return smooth[xy[:, 1], xy[:, 0]]


def _region_walk(smooth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stroke's centre line (N >= 2, 2) of x/y int32 inside its start's colour region."""
    h, w = smooth.shape[:2]
    limit = np.array([w - 1, h - 1])
    point = np.array([rng.uniform(0, w - 1), rng.uniform(0, h - 1)])
    start = smooth[int(round(point[1])), int(round(point[0]))]
    angle = rng.uniform(0, 2 * np.pi)
    polyline = [point]
    for _ in range(int(rng.integers(STROKE_SEGMENTS[0], STROKE_SEGMENTS[1] + 1))):
        for _ in range(STROKE_TRIES):
            turn = angle + rng.uniform(-np.pi / 3, np.pi / 3)  # gently curving, like a hand
            step = rng.uniform(*STROKE_STEP) * min(h, w)
            end = np.clip(point + step * np.array([np.cos(turn), np.sin(turn)]), 0, limit)
            if _one_region(_segment_pixels(smooth, point, end), start):
                angle, point = turn, end
                polyline.append(point)
                break
        else:
            break  # no way on inside the region: the stroke ends here
    if len(polyline) == 1:  # a dab: a polyline needs two points to be drawn
        polyline.append(point)
    return np.round(polyline).astype(np.int32)


def sample_strokes(image: np.ndarray, rng: np.random.Generator) -> list[tuple]:
    """Random scribbles, each inside one colour region: [(polyline (N, 2) x/y int32, width,
    (r, g, b)), ...]."""
    h, w = image.shape[:2]
    if rng.random() < STROKES_P_NONE:
        return []
    scale = min(h, w) / REFERENCE_SIZE
    smooth = _region_image(image)
    strokes = []
    for _ in range(min(int(rng.geometric(STROKES_P)), MAX_STROKES)):
        line = _region_walk(smooth, rng)
        width = max(1, round(rng.integers(STROKE_WIDTH[0], STROKE_WIDTH[1] + 1) * scale))
        color = _median_color(image[stroke_mask(line, width, (h, w))])
        strokes.append((line, width, color))
    return strokes


def _render_strokes(strokes, hw: tuple[int, int]) -> np.ndarray:
    """[(polyline, width, rgb)] -> uint8 (H, W, 4) R, G, B, mask; later strokes win."""
    out = np.zeros((*hw, 4), np.uint8)
    for line, width, rgb in strokes:
        cv2.polylines(out, [line], False, (*rgb, MASK_ON), thickness=width, lineType=cv2.LINE_8)
    return out


def stroke_hints(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour scribbles (see sample_strokes), uint8 (H, W, 4): R, G, B, mask."""
    _check_rgb(image, "stroke_hints")
    return _render_strokes(sample_strokes(image, rng), image.shape[:2])


# The strokes as a fixed-size array, for the device forms (jaxcolor.data.device_hints.strokes,
# .scribbles): one row per stroke, in drawing order, (n_points, x0, y0, .., x4, y4, width, r,
# g, b, used): a polyline has 2 .. STROKE_POINTS points (its unused slots repeat the last one);
# rows after the last stroke are 0 with used = 0. sample_strokes draws at most MAX_STROKES.
STROKE_POINTS = STROKE_SEGMENTS[1] + 1
STROKE_FIELDS = 1 + 2 * STROKE_POINTS + 1 + 3 + 1


def strokes_to_array(strokes) -> np.ndarray:
    """sample_strokes' list -> int32 (MAX_STROKES, STROKE_FIELDS) (see above)."""
    out = np.zeros((MAX_STROKES, STROKE_FIELDS), np.int32)
    for row, (line, width, rgb) in zip(out, strokes, strict=False):
        n = len(line)
        padded = np.concatenate([line, np.repeat(line[-1:], STROKE_POINTS - n, axis=0)])
        row[:] = (n, *padded.reshape(-1), width, *rgb, 1)
    return out


def strokes_from_array(sample: np.ndarray) -> list[tuple]:
    """strokes_to_array's rows -> sample_strokes' list (the used rows)."""
    return [
        (
            row[1 : 1 + 2 * row[0]].reshape(-1, 2).astype(np.int32),
            int(row[1 + 2 * STROKE_POINTS]),
            tuple(map(int, row[2 + 2 * STROKE_POINTS : 5 + 2 * STROKE_POINTS])),
        )
        for row in sample
        if row[-1]
    ]


def stroke_sample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`strokes`' and `scribbles`' host sampler: sample_strokes as int32 (MAX_STROKES,
    STROKE_FIELDS); the same draw as stroke_hints (scribble_hints) with the same rng."""
    _check_rgb(image, "stroke_sample")
    return strokes_to_array(sample_strokes(image, rng))


def paint_mask(drawing: np.ndarray) -> np.ndarray:
    """bool (H, W): the painted pixels of a user's drawing, i.e. those with a channel at or
    below PAPER_LEVEL (the rest is white or transparent paper)."""
    return (drawing <= PAPER_LEVEL).any(axis=-1)


def hints_from_drawing(image: np.ndarray) -> np.ndarray:
    """A user's hint drawing (colour on white/transparent paper) -> R, G, B, mask (H, W, 4).

    Pixels with every channel above PAPER_LEVEL are paper (no hint); every other pixel is a
    hint of its own colour. Serves both `points` and `strokes` models at inference.
    """
    _check_rgb(image, "hints_from_drawing")
    hint = paint_mask(image)
    out = np.zeros((*image.shape[:2], 4), np.uint8)
    out[hint, :3] = image[hint]
    out[hint, 3] = MASK_ON
    return out


def _masked_pixels(hints):
    """The hinted pixels of R, G, B, mask hints (..., 4) as 0..255 values: mask == MASK_ON. Only
    array operators, so numpy and JAX arrays both work."""
    return hints[..., -1] == MASK_ON


def _on_paper_pixels(hints):
    """The hinted pixels of R, G, B hints drawn on white paper (..., 3) as 0..255 values: not
    every channel is paper (the rule of scribbles_on_paper). numpy and JAX arrays both work."""
    return (hints[..., :3] <= PAPER_LEVEL).any(axis=-1)


def scribbles_on_paper(hints: np.ndarray) -> np.ndarray:
    """R, G, B, mask hints -> R, G, B on white paper (H, W, 3): the `scribbles` layout.

    Pixels without a hint, and hints whose every channel is above PAPER_LEVEL (which a drawing
    could not tell from paper), become 255.
    """
    rgb, mask = hints[..., :3], hints[..., 3] == MASK_ON
    paper = ~mask | (rgb > PAPER_LEVEL).all(axis=-1)
    return np.where(paper[..., None], np.uint8(255), rgb).astype(np.uint8)


def scribble_hints(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The `strokes` scribbles drawn on white paper, uint8 (H, W, 3): R, G, B (no mask)."""
    _check_rgb(image, "scribble_hints")
    return scribbles_on_paper(stroke_hints(image, rng))


def scribbles_from_drawing(image: np.ndarray) -> np.ndarray:
    """A user's scribble drawing (colour on white/transparent paper) -> `scribbles` (H, W, 3),
    with the same paper rule as training."""
    return scribbles_on_paper(hints_from_drawing(image))


# ---------------------------------------------------------------------------------------------
# blur from a drawing: training shows a `blur` model the whole colour image blurred, a user paints
# a few strokes on paper. The paper is filled by normalised convolution (Knutsson and Westin
# 1993): the blur of (colour x paint mask) over the blur of the mask, with the training sigma and
# blur, i.e. at each pixel the Gaussian-weighted mean colour of the paint around it. Far from
# every stroke that mean is 0 / 0, so each pixel also takes the same mean at 2x, 4x ... the sigma
# (up to the image's longer side), and last the mean of all paint: from the coarsest scale down,
# estimate = (blur(colour x mask) + eps * coarser) / (blur(mask) + eps). Where a scale has
# clearly more paint weight than eps it keeps its own mean; where it has none it slides smoothly
# to the coarser estimate. (Multi-scale normalised convolution rather than a push-pull pyramid:
# each scale is training's own blur at a larger sigma.) The filled picture then goes through
# blur_hints itself, so the map is the training cue of a picture with the painted colours: as
# smooth as any training cue, dense, without NaN, the strokes' colours around each stroke and
# white only where white-ish colour was painted. A drawing without paper is blur_hints exactly.
FILL_DENSITY = 1e-3  # eps at the training sigma (a share of painted pixels); / 4 per octave,
# which is the same amount of paint, spread over 4x the area
FILL_RADIUS = 6.0  # kernels cut at 6 sigma (weight e^-18), far below eps: no seam where they end


def _paper_filled(drawing: np.ndarray, paint: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 (H, W, 3): the drawing with its paper (~paint) filled from the paint by multi-scale
    normalised convolution at `sigma`, 2 sigma, ... (see above); needs some paint."""
    hw = paint.shape
    weighted = np.concatenate([drawing * paint[..., None], paint[..., None]], axis=-1)
    weighted = weighted.astype(np.float32)
    estimate = np.broadcast_to(drawing[paint].mean(axis=0, dtype=np.float32), (*hw, 3))
    for octave in reversed(range(max(1, math.ceil(math.log2(max(hw) / sigma))))):
        blurred = _gaussian_blur(weighted, sigma * 2**octave, radius=FILL_RADIUS)
        eps = FILL_DENSITY / 4**octave
        estimate = (blurred[..., :3] + eps * estimate) / (blurred[..., 3:] + eps)
    filled = np.clip(np.round(estimate), 0, 255).astype(np.uint8)  # clip: float32 rounding
    return np.where(paint[..., None], drawing, filled)


def blur_hints_from_drawing(
    drawing: np.ndarray, *, sigma_at_256: float = BLUR_SIGMA_AT_256
) -> np.ndarray:
    """A user's drawing (colour on white/transparent paper) -> the dense `blur` colour map
    (H, W, 3) uint8 that training shows: blur_hints of the drawing with its paper filled.

    Paper follows paint_mask's rule. A drawing without paint has nothing to spread: ValueError.
    """
    _check_rgb(drawing, "blur_hints_from_drawing")
    paint = paint_mask(drawing)
    if not paint.any():
        raise ValueError("blur_hints_from_drawing: the drawing has no paint, only paper")
    filled = _paper_filled(drawing, paint, blur_sigma(paint.shape, sigma_at_256))
    return blur_hints(filled, sigma_at_256=sigma_at_256)


# ---------------------------------------------------------------------------------------------
# palette: the colour histogram of the residual-attention U-Net of Chen et al. 2019 ("Automatic
# Colorization of Anime Sketch Image with Enhanced Residual U-net and Auxiliary Classifier GAN":
# "crop image into 4 regions vertically ... top-4 colors for each region ... 4 RGB images, the
# i-th contains the top-i color of each region"): PALETTE_BANDS horizontal bands (rows
# split as evenly as np.array_split does), each band's colours are quantised to
# PALETTE_LEVELS levels per channel (32: value // 8, reported as the level's centre 8q + 4), and
# its PALETTE_TOP most frequent quantised colours (ties: smaller r, g, b key first) are kept.
# Plane i (channels 3i .. 3i+2) is filled, over each band's rows, with that band's i-th colour.
# A band with fewer distinct colours repeats its most frequent one in the missing planes.
PALETTE_BANDS = 4
PALETTE_TOP = 4
PALETTE_LEVELS = 32


def palette_colors(image: np.ndarray) -> np.ndarray:
    """uint8 (PALETTE_BANDS, PALETTE_TOP, 3): each band's top colours, most frequent first."""
    _check_rgb(image, "palette_colors")
    step = 256 // PALETTE_LEVELS
    q = (image // step).astype(np.int32)
    keys = (q[..., 0] * PALETTE_LEVELS + q[..., 1]) * PALETTE_LEVELS + q[..., 2]
    colors = np.zeros((PALETTE_BANDS, PALETTE_TOP, 3), np.uint8)
    for band, rows in enumerate(np.array_split(keys, PALETTE_BANDS, axis=0)):
        counts = np.bincount(rows.ravel(), minlength=PALETTE_LEVELS**3)
        order = np.argsort(-counts, kind="stable")[:PALETTE_TOP]
        present = order[counts[order] > 0]
        top = np.concatenate([present, np.repeat(present[:1], PALETTE_TOP - len(present))])
        r, g, b = (
            top // PALETTE_LEVELS**2,
            (top // PALETTE_LEVELS) % PALETTE_LEVELS,
            top % PALETTE_LEVELS,
        )
        levels = np.stack([r, g, b], axis=-1)
        colors[band] = levels * step + step // 2
    return colors


def render_palette(colors: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """palette_colors output -> uint8 (H, W, 3 * PALETTE_TOP) planes over the bands of `hw`."""
    out = np.zeros((*hw, 3 * PALETTE_TOP), np.uint8)
    bands = np.array_split(np.arange(hw[0]), PALETTE_BANDS)
    for band, rows in enumerate(bands):
        if len(rows):
            out[rows[0] : rows[-1] + 1] = colors[band].reshape(-1)
    return out


def palette_hints(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Regional colour histogram planes (see palette_colors), uint8 (H, W, 12)."""
    del rng  # deterministic
    return render_palette(palette_colors(image), image.shape[:2])


def no_hints(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    del rng
    return np.zeros((*image.shape[:2], 0), np.uint8)


# ---------------------------------------------------------------------------------------------
# The hint methods: one HintSpec per `data.hints` name, the only place a method is described.
# Training (the pipeline, the hint loss, config checks), evaluation (baselines, hint fidelity,
# the sample sheet), inference (colorize and the server) and the page (through /v1/info) ask the
# spec; none compares method names. `register()` adds a method from anywhere (a test file).

DRAWING = "drawing"  # the user paints on paper of the sketch's size
IMAGE = "image"  # the user gives any colour image (e.g. palette's reference)


def identity(hints: np.ndarray) -> np.ndarray:
    return hints


@dataclasses.dataclass(frozen=True)
class HintSpec:
    """What one `data.hints` method is, for every part that handles hints.

    - name, channels: the config name and the number of hint channels it adds to the sketch.
    - make: training's draw, `(rgb uint8 (H, W, 3), rng) -> uint8 (H, W, channels)`; numpy only,
      deterministic given its rng, and a module-level function (Grain workers pickle it).
    - user_input: what a user gives at inference: DRAWING (colour on white or transparent paper,
      of the sketch's size; resized nearest-neighbour to the working size), IMAGE (any colour
      image), or None (the method takes no hints).
    - from_user: `(the drawing at the working size, or the image as given; working (h, w)) ->
      uint8 (h, w, channels)`, how the user's input becomes the channels.
    - needs_paint: for DRAWING methods that refuse a drawing without paint, the reason given.
    - from_points: `R, G, B, mask (h, w, 4) point patches -> (h, w, channels)`; None: the method
      takes no --hint_points.
    - hinted_pixels: `hint channels (..., channels) as 0..255 values -> bool (...)`: the pixels
      that carry a user's colour (R, G, B first), with array operators only (numpy and JAX). The
      hint loss, hint fidelity, the sketch+hints baseline and the sample sheet read it; None:
      no colour at known pixels.
    - palette: the channels are palette planes (hint fidelity by band colours, sample sheet
      strips).
    - as_image: the first three channels are a colour image (the `hints` baseline outputs it).
    - shows_map: the page may show the channels (/v1/hints) as the model's dense colour map.
    - help: what --hints (the `hints` field) is for this method, in messages, /v1/info and the
      page; label: the page's name for an IMAGE upload.
    - device: the per-example device (JAX) form of `make`, `(rgb uint8 (H, W, 3), sample int32
      (N, F) or None, key) -> uint8 (H, W, channels)`, vmapped and jitted by the caller: a
      "module:function" string (built-ins: jaxcolor.data.device_hints, imported only when asked
      for, so this module stays free of JAX) or a callable; see device_form(). None: no device
      form (the method is derived on the host only).
    - sample, sample_shape: for a device form that rasterises host-drawn geometry, the host
      sampler `(rgb uint8 (H, W, 3), rng) -> int32 sample_shape`, drawing exactly `make`'s
      distribution (the same rng gives the same picture); both or neither. Without them the
      device form gets sample=None.
    """

    name: str
    channels: int
    make: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    user_input: str | None = None
    from_user: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None
    needs_paint: str | None = None
    from_points: Callable[[np.ndarray], np.ndarray] | None = None
    hinted_pixels: Callable[[Any], Any] | None = None
    palette: bool = False
    as_image: bool = False
    shows_map: bool = False
    help: str = ""
    label: str = "hint drawing"
    device: str | Callable[..., Any] | None = None
    sample: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    sample_shape: tuple[int, int] | None = None

    def __post_init__(self):
        if (self.sample is None) != (self.sample_shape is None):
            raise ValueError(f"HintSpec {self.name}: sample and sample_shape come together")
        if self.sample is not None and self.device is None:
            raise ValueError(f"HintSpec {self.name}: a sample is for a device form (device)")
        if isinstance(self.device, str) and self.device.count(":") != 1:
            raise ValueError(
                f"HintSpec {self.name}: device must be 'module:function' or a callable, "
                f"got {self.device!r}"
            )
        if self.user_input not in (DRAWING, IMAGE, None):
            raise ValueError(
                f"HintSpec {self.name}: user_input must be {DRAWING!r}, {IMAGE!r} or None"
            )
        if (self.user_input is None) != (self.channels == 0) or (
            self.user_input is not None and self.from_user is None
        ):
            raise ValueError(
                f"HintSpec {self.name}: a method with channels takes a user input (user_input "
                "and from_user); one without channels takes none"
            )

    @property
    def takes_points(self) -> bool:
        return self.from_points is not None


_SPECS: dict[str, HintSpec] = {}


def register(spec: HintSpec) -> None:
    """Adds a hint method (e.g. from a test file); its name becomes a valid `data.hints`."""
    if spec.name in _SPECS and _SPECS[spec.name] != spec:
        raise ValueError(f"data.hints method {spec.name!r} is already registered")
    _SPECS[spec.name] = spec


def unregister(spec: HintSpec) -> None:
    if _SPECS.get(spec.name) == spec:
        del _SPECS[spec.name]


def hint_spec(method: str) -> HintSpec:
    """The spec of `data.hints` method `method`; ValueError naming the valid ones."""
    try:
        return _SPECS[method]
    except KeyError:
        raise ValueError(
            f"Unknown data.hints {method!r}; valid methods are {', '.join(sorted(_SPECS))}."
        ) from None


def methods() -> tuple[str, ...]:
    """Every registered method, in registration order."""
    return tuple(_SPECS)


def pixel_methods() -> tuple[str, ...]:
    """The methods that carry a user's colour at known pixels (their `hinted_pixels`)."""
    return tuple(name for name, spec in _SPECS.items() if spec.hinted_pixels is not None)


class _SpecView(Mapping):
    """A read-only {method: one field of its spec} view of the registry (registered ones too)."""

    def __init__(self, field: Callable[[HintSpec], Any]):
        self._field = field

    def __getitem__(self, method: str):
        if method not in _SPECS:
            raise KeyError(method)
        return self._field(_SPECS[method])

    def __iter__(self):
        return iter(_SPECS)

    def __len__(self) -> int:
        return len(_SPECS)


# Number of hint channels each method produces; the generator's input width depends on it.
HINT_CHANNELS = _SpecView(lambda spec: spec.channels)
# Each method's training draw.
HINTS = _SpecView(lambda spec: spec.make)


def hinted_pixels(hints, method: str):
    """Hint channels (..., C) of `method` as 0..255 values -> bool (...): the pixels that carry a
    colour, by the method's spec. Only array operators are used, so numpy and JAX arrays both
    work."""
    spec = hint_spec(method)
    if spec.hinted_pixels is None:
        raise ValueError(f"data.hints={method!r} does not mark hinted pixels; {pixel_methods()} do")
    return spec.hinted_pixels(hints)


def device_form(method: str) -> Callable[..., Any] | None:
    """The device (JAX) form of `method` (HintSpec.device), imported on first use; None if the
    method has none."""
    device = hint_spec(method).device
    if device is None or callable(device):
        return device
    module, name = device.split(":")
    return getattr(importlib.import_module(module), name)


def make_hints(
    method: str, image: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The hint channels for `method` (see HINT_CHANNELS) as uint8 (H, W, C).

    Random methods without `rng` use a fixed seed (0), so callers outside the pipeline stay
    deterministic.
    """
    return hint_spec(method).make(image, np.random.default_rng(0) if rng is None else rng)


def _palette_from_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return render_palette(palette_colors(image), hw)


def _blur_from_drawing(drawing: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return blur_hints_from_drawing(drawing)


def _points_from_drawing(drawing: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return hints_from_drawing(drawing)


def _scribbles_from_drawing(drawing: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return scribbles_from_drawing(drawing)


_DEVICE = "jaxcolor.data.device_hints:"

for _spec in (
    HintSpec(
        "blur",
        3,
        blur_hints,
        user_input=DRAWING,
        from_user=_blur_from_drawing,
        needs_paint="A blur model spreads the painted colours into its colour map",
        as_image=True,
        shows_map=True,
        device=_DEVICE + "blur",
        help="a drawing of the sketch's size: colour strokes (or a whole colour image) on white "
        "or transparent paper, spread into a dense colour map with the training blur; white and "
        "transparent are unpainted paper, so paint light colours slightly off-white",
    ),
    HintSpec(
        "points",
        4,
        point_hints,
        user_input=DRAWING,
        from_user=_points_from_drawing,
        from_points=identity,
        hinted_pixels=_masked_pixels,
        device=_DEVICE + "points",
        sample=point_sample,
        sample_shape=(MAX_POINTS, POINT_FIELDS),
        help="a drawing of the sketch's size: coloured dots on white or transparent paper",
    ),
    HintSpec(
        "strokes",
        4,
        stroke_hints,
        user_input=DRAWING,
        from_user=_points_from_drawing,
        from_points=identity,
        hinted_pixels=_masked_pixels,
        device=_DEVICE + "strokes",
        sample=stroke_sample,
        sample_shape=(MAX_STROKES, STROKE_FIELDS),
        help="a drawing of the sketch's size: colour scribbles on white or transparent paper",
    ),
    HintSpec(
        "scribbles",
        3,
        scribble_hints,
        user_input=DRAWING,
        from_user=_scribbles_from_drawing,
        from_points=scribbles_on_paper,
        hinted_pixels=_on_paper_pixels,
        device=_DEVICE + "scribbles",
        sample=stroke_sample,
        sample_shape=(MAX_STROKES, STROKE_FIELDS),
        help="a drawing of the sketch's size: colour scribbles on white or transparent paper",
    ),
    HintSpec(
        "palette",
        3 * PALETTE_TOP,
        palette_hints,
        user_input=IMAGE,
        from_user=_palette_from_image,
        palette=True,
        as_image=True,
        device=_DEVICE + "palette",
        help="a colour reference image of any size (its 4-band palette is taken as in training)",
        label="Palette image",
    ),
    HintSpec("none", 0, no_hints, device=_DEVICE + "none"),
):
    register(_spec)
del _spec

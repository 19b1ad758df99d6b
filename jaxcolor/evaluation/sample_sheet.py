"""The sample sheet: one row per image, columns sketch | hints | (reference) | output | target,
under a header naming them; each row is labelled with its index and PSNR (numpy and OpenCV).

Cells of small images are enlarged by a whole factor (nearest neighbour) to at least MIN_CELL
pixels wide, so that a 32 px run's sheet can be read. Layout, for cells of h x w after enlarging:
the header is HEADER rows high, the row labels LABEL_WIDTH columns wide, and cell (i, j) starts at
row HEADER + PAD + i * (h + PAD) and column LABEL_WIDTH + PAD + j * (w + PAD).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from jaxcolor import summary
from jaxcolor.data import hints as hints_lib
from jaxcolor.data.hints import PALETTE_TOP
from jaxcolor.evaluation import hint_fidelity

MIN_CELL = 128
HEADER = 24
LABEL_WIDTH = 64
PAD = 2
SKETCH_FADE = 0.3  # how much of the sketch's darkness stays under painted hints
OUTLINE = 64  # grey level of the ring drawn around hinted pixels

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def hint_panel(hints: np.ndarray, sketch: np.ndarray, method: str) -> np.ndarray:
    """uint8 hint channels (N, H, W, C) -> (N, H, W, 3) uint8 a person can read: blur as is;
    points, strokes and scribbles their colours, ringed, over a faded sketch; palette its planes
    side by side (plane i in the i-th quarter of the width: one row of swatches per band)."""
    spec = hints_lib.hint_spec(method)
    if spec.hinted_pixels is not None:
        return np.stack([_painted(h, s, method) for h, s in zip(hints, sketch, strict=True)])
    if spec.palette:
        return _palette_strips(hints)
    return np.ascontiguousarray(hints[..., :3])


def _painted(hints: np.ndarray, sketch: np.ndarray, method: str) -> np.ndarray:
    colors, mask = hint_fidelity.hinted_pixels(hints, method)
    faded = 255.0 - (255.0 - sketch[..., :1].astype(np.float32)) * SKETCH_FADE
    out = np.repeat(np.round(faded), 3, axis=-1).astype(np.uint8)
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
    out[ring] = OUTLINE  # a 1 px click of a pale colour stays visible on white
    out[mask] = colors[mask].astype(np.uint8)
    return out


def _palette_strips(hints: np.ndarray) -> np.ndarray:
    out = np.empty((*hints.shape[:3], 3), np.uint8)
    edges = np.linspace(0, hints.shape[2], PALETTE_TOP + 1).round().astype(int)
    for plane in range(PALETTE_TOP):
        left, right = edges[plane], edges[plane + 1]
        out[:, :, left:right] = hints[:, :, left:right, 3 * plane : 3 * plane + 3]
    return out


def _text(image: np.ndarray, text: str, center_x: int, baseline_y: int, max_width: int) -> None:
    """Black text centred on `center_x`, shrunk until it fits `max_width`."""
    scale = 0.5
    (width, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    while width > max_width and scale > 0.25:
        scale -= 0.05
        (width, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    origin = (int(center_x - width // 2), int(baseline_y))
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def cell_scale(width: int) -> int:
    """The whole factor that brings a cell `width` px wide to at least MIN_CELL px."""
    return max(1, -(-MIN_CELL // width))


def sample_sheet(
    columns: Sequence[tuple[str, np.ndarray]], row_labels: Sequence[Sequence[str]] = ()
) -> np.ndarray:
    """[(header, uint8 (N, H, W, C) images)] -> one uint8 RGB sheet, a row per image.

    `row_labels[i]` are short lines (e.g. "#3", "21.4 dB") written left of row i.
    """
    n, h, w = columns[0][1].shape[:3]
    k = cell_scale(w)
    big = [np.repeat(np.repeat(images, k, axis=1), k, axis=2) for _, images in columns]
    body = summary.image_grid(big, max_rows=n, pad=PAD)
    sheet = np.full((HEADER + body.shape[0], LABEL_WIDTH + body.shape[1], 3), 255, np.uint8)
    sheet[HEADER:, LABEL_WIDTH:] = body
    for j, (name, _) in enumerate(columns):
        left = LABEL_WIDTH + PAD + j * (w * k + PAD)
        _text(sheet, name, left + w * k // 2, HEADER - 7, w * k)
    for i, lines in enumerate(row_labels):
        top = HEADER + PAD + i * (h * k + PAD)
        for line_no, line in enumerate(lines):
            _text(sheet, line, LABEL_WIDTH // 2, top + 16 * (line_no + 1), LABEL_WIDTH - 4)
    return sheet


def sheet_columns(
    samples: Mapping[str, np.ndarray], hint_method: str
) -> list[tuple[str, np.ndarray]]:
    """The evaluator's samples ({"sketch" or "color", "hints"?, "reference"?, "output",
    "target"}, uint8) -> the sheet's columns in order, the hints made readable."""
    first = "color" if "color" in samples else "sketch"
    out = [(first, samples[first])]
    if "hints" in samples:
        out.append(("hints", hint_panel(samples["hints"], samples["sketch"], hint_method)))
    out += [(k, samples[k]) for k in ("reference", "output", "target") if k in samples]
    return out


def write_png(path, sheet: np.ndarray) -> None:
    """Writes an RGB sheet as PNG to a local or gs:// `path` (an etils.epath.Path)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode the sample sheet for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())

"""Random-access image sources for the Grain pipeline: synthetic cartoons, image folders, TFDS.

Folder and TFDS sources return encoded bytes; `DecodedSource` turns them into RGB arrays in the
Grain workers, replacing an unusable file by the next usable one (logged and counted).
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Sequence

import cv2
import numpy as np
from absl import logging
from etils import epath

from jaxcolor.core.image_files import IMAGE_EXTENSIONS
from jaxcolor.core.image_size import hw
from jaxcolor.data import decode

_MIN_SIZE = 16
_MAX_SIZE = 4096
# Shapes drawn below this many pixels turn to mush, so small images are drawn here and downscaled.
_MIN_DRAW_SIZE = 64
# Sub-pixel precision for cv2 polygon drawing (coordinates are scaled by 2**_SHIFT).
_SHIFT = 4
_SHAPE_KINDS = ("ellipse", "rectangle", "polygon", "star", "blob")
_BACKGROUND_KINDS = ("flat", "vertical", "diagonal", "stripes", "dots")


def _checked_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of `image_size` (`core.image_size.hw`), within the synthetic source's
    range."""
    height, width = hw(image_size)
    if min(height, width) < _MIN_SIZE or max(height, width) > _MAX_SIZE:
        raise ValueError(
            f"image_size must be between {_MIN_SIZE} and {_MAX_SIZE} px per side, "
            f"got {image_size!r}"
        )
    return height, width


def _hsv(
    rng: np.random.Generator,
    s: tuple[float, float],
    v: tuple[float, float],
    hue: float | None = None,
) -> np.ndarray:
    """Samples an RGB float colour in [0, 255] with the given saturation/value ranges."""
    h = rng.uniform() if hue is None else hue % 1.0
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(*s), rng.uniform(*v))
    return np.array(rgb, np.float32) * 255.0


def _shade(color: np.ndarray, factor: float) -> np.ndarray:
    """Darkens a colour and nudges it towards blue-violet, as cel-shading palettes do."""
    h, s, v = colorsys.rgb_to_hsv(*(color / 255.0))
    # Shadows in anime palettes shift hue towards violet rather than just going grey.
    h = h + 0.04 * math.sin(2 * math.pi * (0.72 - h))
    rgb = colorsys.hsv_to_rgb(h % 1.0, min(1.0, s * 1.15 + 0.05), v * factor)
    return np.array(rgb, np.float32) * 255.0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Draws a light background: flat, gradient, soft stripes or dots (float32 RGB)."""
    kind = _BACKGROUND_KINDS[rng.integers(len(_BACKGROUND_KINDS))]
    # Pale, low-saturation backgrounds keep the (saturated) shapes the visual subject.
    c1 = _hsv(rng, (0.05, 0.45), (0.75, 1.0))
    c2 = _hsv(rng, (0.05, 0.5), (0.6, 1.0))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    size = float(min(height, width))
    if kind == "flat":
        t = np.zeros((height, width), np.float32)
    elif kind == "vertical":
        t = ys / max(height - 1, 1)
    elif kind == "diagonal":
        angle = rng.uniform(0, 2 * math.pi)
        proj = xs * math.cos(angle) + ys * math.sin(angle)
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        period = size * rng.uniform(0.12, 0.3)
        proj = xs * math.cos(angle) + ys * math.sin(angle)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * proj / period)
    else:  # dots
        mask = np.zeros((height, width), np.uint8)
        step = max(8, int(size * rng.uniform(0.08, 0.16)))
        radius = max(1, int(step * rng.uniform(0.15, 0.3)))
        for row, y in enumerate(range(step // 2, height + step, step)):
            offset = step // 2 if row % 2 else 0
            for x in range(offset, width + step, step):
                cv2.circle(mask, (x, y), radius, 255, -1, cv2.LINE_AA)
        # Soft, low-contrast dots: crisp ones turn into speckle noise in the XDoG sketch.
        t = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(1.0, radius * 0.6)) * 0.5
    return c1 * (1.0 - t[..., None]) + c2 * t[..., None]


def _shape_points(
    rng: np.random.Generator, kind: str, center: np.ndarray, radius: float
) -> np.ndarray:
    """Returns the outline of one shape as a float (N, 2) polygon of (x, y) points."""
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "ellipse":
        ratio = rng.uniform(0.45, 1.0)
        theta = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        local = np.stack([radius * np.cos(theta), radius * ratio * np.sin(theta)], -1)
    elif kind == "rectangle":
        ratio = rng.uniform(0.35, 1.0)
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
        local *= np.array([radius, radius * ratio]) * 0.85
    elif kind == "polygon":
        n = int(rng.integers(3, 7))
        theta = np.sort(rng.uniform(0, 2 * math.pi, n)) if n > 3 else None
        if theta is None or np.min(np.diff(np.r_[theta, theta[0] + 2 * math.pi])) < 0.5:
            # Evenly spaced vertices avoid sliver polygons that collapse to a line.
            theta = np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(-0.2, 0.2, n)
        r = radius * rng.uniform(0.75, 1.0, n)
        local = np.stack([r * np.cos(theta), r * np.sin(theta)], -1)
    elif kind == "star":
        n = int(rng.integers(4, 8))
        theta = np.linspace(0, 2 * math.pi, 2 * n, endpoint=False)
        r = np.where(np.arange(2 * n) % 2 == 0, radius, radius * rng.uniform(0.4, 0.6))
        local = np.stack([r * np.cos(theta), r * np.sin(theta)], -1)
    else:  # blob: a radius made of a few low-frequency harmonics gives a rounded organic form
        theta = np.linspace(0, 2 * math.pi, 128, endpoint=False)
        r = np.ones_like(theta)
        for harmonic in range(2, 5):
            r += (
                rng.uniform(0.05, 0.18)
                / (harmonic - 1)
                * np.cos(harmonic * theta + rng.uniform(0, 2 * math.pi))
            )
        local = np.stack([radius * r * np.cos(theta), radius * r * np.sin(theta)], -1) * 0.9
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return local @ rot.T + center


def _fixed(points: np.ndarray) -> np.ndarray:
    """Converts float points to cv2's fixed-point int32 polygon format."""
    return np.round(points * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _mask(
    height: int, width: int, polygons: list[np.ndarray], erase: np.ndarray | None = None
) -> np.ndarray:
    """Rasterises polygons into an antialiased float alpha mask, optionally minus `erase`."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [_fixed(p) for p in polygons], 255, cv2.LINE_AA, _SHIFT)
    if erase is not None:
        cv2.fillPoly(mask, [_fixed(erase)], 0, cv2.LINE_AA, _SHIFT)
    return mask.astype(np.float32)[..., None] / 255.0


def _blend(canvas: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> None:
    """Alpha-blends a flat colour over the float canvas in place."""
    # In-place form avoids three full-size temporaries per layer (matters at 1024 px).
    delta = np.subtract(color, canvas, dtype=np.float32)
    delta *= alpha
    canvas += delta


def _draw_shape(
    rng: np.random.Generator, canvas: np.ndarray, light: np.ndarray, line_width: int
) -> None:
    """Draws one outlined, cel-shaded shape onto the float canvas in place."""
    height, width = canvas.shape[:2]
    size = min(height, width)
    kind = _SHAPE_KINDS[rng.integers(len(_SHAPE_KINDS))]
    radius = size * rng.uniform(0.12, 0.32)
    center = rng.uniform([0.08 * width, 0.08 * height], [0.92 * width, 0.92 * height])
    points = _shape_points(rng, kind, center, radius)

    # Work in the shape's bounding box only: full-frame masks per shape are slow at 1024 px.
    pad = line_width + 2
    x0 = max(int(points[:, 0].min()) - pad, 0)
    y0 = max(int(points[:, 1].min()) - pad, 0)
    x1 = min(int(math.ceil(points[:, 0].max())) + pad, width)
    y1 = min(int(math.ceil(points[:, 1].max())) + pad, height)
    if x1 <= x0 or y1 <= y0:
        return
    local = points - np.array([x0, y0])
    box = canvas[y0:y1, x0:x1]
    bh, bw = box.shape[:2]

    fill = _hsv(rng, (0.45, 1.0), (0.62, 1.0))
    alpha = _mask(bh, bw, [local])
    _blend(box, fill, alpha)

    # Cel shadow: the part of the shape that a copy shifted towards the light does not cover,
    # i.e. a hard-edged crescent on the side facing away from the light.
    shift = light * radius * rng.uniform(0.25, 0.45)
    shadow = _mask(bh, bw, [local], erase=local + shift)
    shade = _shade(fill, rng.uniform(0.62, 0.8))
    _blend(box, shade, shadow)

    if rng.uniform() < 0.6:
        spot = np.zeros((bh, bw), np.uint8)
        hc = center - np.array([x0, y0]) + light * radius * rng.uniform(0.35, 0.55)
        axes = (
            max(1, int(radius * rng.uniform(0.08, 0.18))),
            max(1, int(radius * rng.uniform(0.04, 0.1))),
        )
        tilt = math.degrees(math.atan2(light[1], light[0])) + 90.0
        cv2.ellipse(spot, (int(hc[0]), int(hc[1])), axes, tilt, 0, 360, 255, -1, cv2.LINE_AA)
        highlight = alpha * (spot.astype(np.float32)[..., None] / 255.0) * 0.9
        white = np.clip(fill * 0.25 + 235.0, 0, 255)
        _blend(box, white, highlight)

    # cv2 only antialiases 8-bit images, so the outline goes through a uint8 coverage mask.
    line = np.zeros((bh, bw), np.uint8)
    cv2.polylines(line, [_fixed(local)], True, 255, line_width, cv2.LINE_AA, _SHIFT)
    coverage = line.astype(np.float32)[..., None] / 255.0
    ink = np.clip(_shade(fill, 0.18), 0, 60)
    _blend(box, ink, coverage)


class SyntheticCartoonSource:
    """Procedural cel-shaded cartoon images, deterministic per (seed, index)."""

    def __init__(self, num_records: int, image_size: int | tuple[int, int], seed: int = 0):
        if int(num_records) < 1:
            raise ValueError(f"num_records must be >= 1, got {num_records!r}")
        self.num_records = int(num_records)
        self.height, self.width = _checked_hw(image_size)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_records

    def __repr__(self) -> str:
        return (
            f"SyntheticCartoonSource(num_records={self.num_records}, "
            f"image_size=({self.height}, {self.width}), seed={self.seed})"
        )

    def __getitem__(self, index: int) -> np.ndarray:
        """Returns image `index` as uint8 RGB (H, W, 3)."""
        index = int(index)
        if index < 0:
            index += self.num_records
        if not 0 <= index < self.num_records:
            raise IndexError(f"index {index} out of range for {self.num_records} records")
        return self._draw(np.random.default_rng([self.seed, index]))

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        """Draws one image at a legible resolution and resizes to the target size."""
        scale = max(1.0, _MIN_DRAW_SIZE / min(self.height, self.width))
        height, width = round(self.height * scale), round(self.width * scale)
        size = min(height, width)
        canvas = _background(rng, height, width)
        angle = rng.uniform(0, 2 * math.pi)
        light = np.array([math.cos(angle), math.sin(angle)])
        # ~2 px at 256 (1-3 px with jitter), growing linearly with resolution.
        line_width = max(1, round(size / 256 * rng.uniform(1.4, 2.8)))
        for _ in range(int(rng.integers(3, 9))):
            _draw_shape(rng, canvas, light, line_width)
        image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        if scale > 1.0:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return image


def _with_scheme(root: epath.Path, dirpath: epath.PathLike) -> epath.Path:
    """A directory that `root.walk()` yielded, as a path under root: fsspec backends (gcsfs)
    yield 'bucket/imgs/sub' for gs://bucket/imgs/sub."""
    scheme, sep, _ = os.fspath(root).partition("://")
    if sep and "://" not in os.fspath(dirpath):
        return epath.Path(f"{scheme}://{os.fspath(dirpath)}")
    return epath.Path(dirpath)


class ImageFolderSource:
    """Image files under a folder (recursive), returned as raw bytes for a decode transform."""

    def __init__(self, root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = epath.Path(root)
        self.extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions
        )
        if not self.root.exists():
            raise FileNotFoundError(
                f"Image folder {os.fspath(root)!r} does not exist; set "
                "--config.data.source=folder:/path/to/images to an existing folder."
            )
        if not self.root.is_dir():
            raise NotADirectoryError(
                f"Image folder {os.fspath(root)!r} is not a directory; set "
                "--config.data.source=folder:/path/to/images to an existing folder."
            )
        self.paths = self._list()
        if not self.paths:
            raise ValueError(
                f"No images with extensions {', '.join(self.extensions)} found under "
                f"{os.fspath(root)!r} (searched recursively, case-insensitive)."
            )

    def _list(self) -> list[str]:
        """Lists matching files recursively; filters by name only (no per-file stat on GCS)."""
        found = []
        for dirpath, _, filenames in self.root.walk():
            for name in filenames:
                if os.path.splitext(name)[1].lower() in self.extensions:
                    found.append(os.fspath(_with_scheme(self.root, dirpath) / name))
        return sorted(found)

    @classmethod
    def _from_paths(
        cls, root: epath.Path, extensions: tuple[str, ...], paths: list[str]
    ) -> ImageFolderSource:
        """Builds a source over an explicit path list without listing the folder again."""
        source = cls.__new__(cls)
        source.root, source.extensions, source.paths = root, extensions, list(paths)
        return source

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageFolderSource(root={os.fspath(self.root)!r}, num_images={len(self.paths)})"

    def __getitem__(self, index: int) -> dict[str, str | bytes]:
        """Returns {"path": str, "bytes": raw file bytes} for image `index`."""
        index = int(index)
        if index < 0:
            index += len(self.paths)
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} images")
        path = self.paths[index]
        return {"path": path, "bytes": epath.Path(path).read_bytes()}

    def split(self, val_fraction: float, seed: int) -> tuple[ImageFolderSource, ImageFolderSource]:
        """Returns (train, val) sources from a seeded shuffle of the sorted paths."""
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        n = len(self.paths)
        if n == 1:
            logging.warning("Only one image under %s; it serves as both train and val.", self.root)
            return self, self
        num_val = 0 if val_fraction == 0 else min(n - 1, max(1, round(val_fraction * n)))
        order = np.random.default_rng(seed).permutation(n)
        # Re-sorting each part keeps file order stable and readable regardless of the shuffle.
        val = sorted(self.paths[i] for i in order[:num_val])
        train = sorted(self.paths[i] for i in order[num_val:])
        return (
            self._from_paths(self.root, self.extensions, train),
            self._from_paths(self.root, self.extensions, val),
        )


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "data.source='tfds:...' needs tensorflow-datasets (no TensorFlow): "
            "pip install tensorflow-datasets"
        ) from e
    return tfds


def tfds_builder(name: str, data_dir: str | None):
    """The TFDS builder of `name` under `data_dir`; ValueError listing what exists if none."""
    tfds = _tfds()
    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        where = epath.Path(data_dir) if data_dir else None
        found = (
            sorted(p.name for p in where.iterdir() if p.is_dir())
            if where and where.exists()
            else []
        )
        raise ValueError(
            f"no TFDS dataset {name!r} in data_dir={data_dir or '(TFDS default)'!r}"
            + (f" (it holds: {', '.join(found)})" if found else "")
            + "; pack an image folder with `python -m jaxcolor.prepare --images DIR --out "
            "DATA_DIR --name NAME` and set data.data_dir=DATA_DIR."
        ) from None


class TfdsSource:
    """One split of a TFDS dataset in ArrayRecord format, read with random access and no TensorFlow.

    Images stay encoded ("bytes"; "sketch_bytes" too if the dataset stores real sketches, as
    `prepare --layout paired` does) so that `DecodedSource` decodes them in the Grain workers.
    """

    IMAGE, SKETCH = "image", "sketch"

    def __init__(self, name: str, split: str, data_dir: str | None = None, builder=None):
        tfds = _tfds()
        builder = builder or tfds_builder(name, data_dir)
        features = builder.info.features
        if self.IMAGE not in features:
            raise ValueError(
                f"TFDS dataset {name!r} has no {self.IMAGE!r} feature (it has "
                f"{', '.join(features.keys())}); jaxcolor reads colour images from 'image'."
            )
        if split not in builder.info.splits:
            raise ValueError(
                f"TFDS dataset {name!r} has no split {split!r} (it has "
                f"{', '.join(builder.info.splits)})."
            )
        self.name, self.split = name, split
        self.has_sketch = self.SKETCH in features
        keys = [self.IMAGE, self.SKETCH] if self.has_sketch else [self.IMAGE]
        try:
            self._source = builder.as_data_source(
                split=split, decoders={k: tfds.decode.SkipDecoding() for k in keys}
            )
        except NotImplementedError as e:  # prepared as TFRecord: no random access
            raise ValueError(
                f"TFDS dataset {name!r} is not in ArrayRecord format; prepare it with "
                "file_format='array_record' (python -m jaxcolor.prepare does)."
            ) from e

    def __len__(self) -> int:
        return len(self._source)

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, split={self.split!r}, num_images={len(self)})"

    def __getitem__(self, index: int) -> dict[str, str | bytes]:
        record = self._source[int(index)]
        where = f"tfds:{self.name}[{self.split}][{int(index)}]"
        if "path" in record:  # the file it was packed from (python -m jaxcolor.prepare)
            where += f" ({record['path'].decode(errors='replace')})"
        element = {"path": where, "bytes": record["image"]}
        if self.has_sketch:
            element["sketch_bytes"] = record[self.SKETCH]
        return element


class DecodedSource:
    """Decodes an encoded source's images; a record that cannot be used is replaced by the next.

    Each element is {"color": uint8 RGB, "skipped": records skipped to reach it} plus "sketch"
    (uint8 (H, W, 1)) when the source stores real sketches (`sketch_bytes`) or `paired` says each
    image holds colour (left) and sketch (right). Skipped records are logged by name, once per
    process and file; `first_usable` checks at start that there is anything to train on.
    """

    def __init__(self, source, *, min_side: int | None = None, paired: bool = False):
        if len(source) < 1:
            raise ValueError(f"{source!r} is empty")
        self.source, self.min_side, self.paired = source, min_side, paired
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"DecodedSource({self.source!r}, paired={self.paired})"

    def __getstate__(self):
        return {**self.__dict__, "_reported": set()}

    def _decode(self, record) -> dict[str, np.ndarray]:
        color = decode.decode(record["bytes"], min_side=self.min_side)
        if self.paired:
            color, sketch = decode.split_paired(color)
            return {"color": color, "sketch": sketch}
        if "sketch_bytes" not in record:
            return {"color": color}
        sketch = cv2.cvtColor(decode.decode(record["sketch_bytes"]), cv2.COLOR_RGB2GRAY)
        if sketch.shape != color.shape[:2]:
            sketch = cv2.resize(sketch, color.shape[1::-1], interpolation=cv2.INTER_AREA)
        return {"color": color, "sketch": sketch[..., None]}

    def _skip(self, path: str, reason: decode.BadImage) -> None:
        if path not in self._reported:
            self._reported.add(path)
            logging.warning("Skipping unusable image %s: %s", path, reason)

    def _read(self, index: int) -> tuple[dict[str, np.ndarray] | None, str]:
        """(decoded record `index`, "") or (None, "path: why it cannot be used")."""
        record = self.source[index]
        try:
            return self._decode(record), ""
        except decode.BadImage as e:
            self._skip(record["path"], e)
            return None, f"{record['path']}: {e}"

    def __getitem__(self, index: int) -> dict[str, np.ndarray | int]:
        n = len(self.source)
        index = int(index) % n
        for skipped in range(n):
            element, _ = self._read((index + skipped) % n)
            if element is not None:
                element["skipped"] = np.int32(skipped)
                return element
        raise ValueError(f"none of the {n} images of {self.source!r} can be used (see log)")

    def first_usable(self) -> int:
        """Index of the first usable record; ValueError naming the reasons if there is none."""
        reasons = []
        for i in range(len(self.source)):
            element, why = self._read(i)
            if element is not None:
                return i
            reasons.append(why)
        shown = "; ".join(reasons[:5]) + (
            f"; ... ({len(reasons) - 5} more)" if len(reasons) > 5 else ""
        )
        raise ValueError(
            f"none of the {len(reasons)} images of {self.source!r} can be used ({shown}); "
            "check the files (python -m jaxcolor.prepare reports each problem)."
        )

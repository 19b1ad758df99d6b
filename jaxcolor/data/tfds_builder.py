"""Packs an image folder into a TFDS dataset in ArrayRecord format (TFDS without TensorFlow).

Every file is decoded once here, so the packed dataset holds only usable, upright RGB images
(long side at most `max_side`); files that cannot be used are listed with the reason. Training
reads the result with `data.source="tfds:NAME"` and `data.data_dir=OUT`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import io
import json
import os
import pathlib
import re
import tempfile
import types

import cv2
import numpy as np
import tensorflow_datasets as tfds
import tqdm
from etils import epath
from PIL import Image

from jaxcolor.core.errors import ConfigError, InputError
from jaxcolor.core.image_files import IMAGE_EXTENSIONS
from jaxcolor.data import decode
from jaxcolor.data.sources import ImageFolderSource

VERSION = "1.0.0"
JPEG_QUALITY = 95
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEEP_FORMATS = ("JPEG", "PNG")  # stored byte for byte when nothing had to change
_LOSSLESS_FORMATS = ("PNG", "BMP", "TIFF", "GIF", "PPM")
REPORT = "jaxcolor_prepare.json"


@dataclasses.dataclass
class Summary:
    """What `prepare` wrote and skipped."""

    directory: str
    written: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, why)
    converted: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def lines(self) -> list[str]:
        total = sum(self.written.values())
        out = [
            f"Wrote {total} images to {self.directory} ("
            + ", ".join(f"{split}: {n}" for split, n in self.written.items())
            + f"); skipped {len(self.skipped)}."
        ]
        if self.converted:
            out.append(
                "Converted: " + ", ".join(f"{k} {n}" for k, n in sorted(self.converted.items()))
            )
        out += [f"  skipped {path}: {why}" for path, why in self.skipped]
        return out


@dataclasses.dataclass(frozen=True)
class _Packed:
    example: dict | None
    notes: tuple[str, ...] = ()
    why: str = ""


def _encode(rgb: np.ndarray, lossless: bool) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.shape[-1] == 3 else rgb
    if lossless:
        return cv2.imencode(".png", bgr)[1].tobytes()
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return resized if resized.ndim == image.ndim else resized[..., None]


def _conversions(data: bytes) -> tuple[str | None, list[str]]:
    """(PIL format, what decoding changes) from the header of a file that decoded fine."""
    with Image.open(io.BytesIO(data)) as header:
        notes = [] if header.mode == "RGB" else [f"mode {header.mode}"]
        if header.getexif().get(0x0112, 1) != 1:
            notes.append("EXIF rotation")
        return header.format, notes


def _pack_file(path: str, root: str, layout: str, max_side: int) -> _Packed:
    """One image file -> its TFDS example (or why it cannot be used)."""
    try:
        data = epath.Path(path).read_bytes()
        image = decode.decode(data)
        fmt, notes = _conversions(data)
        color, sketch = decode.split_paired(image) if layout == "paired" else (image, None)
    except OSError as e:
        return _Packed(None, why=f"cannot read ({e})")
    except decode.BadImage as e:
        return _Packed(None, why=str(e))
    fitted = _fit(color, max_side)
    if fitted.shape != color.shape:
        notes.append("resized")
    if notes or layout == "paired" or fmt not in _KEEP_FORMATS:
        encoded = _encode(fitted, lossless=fmt in _LOSSLESS_FORMATS)
    else:
        encoded = data  # already an upright RGB JPEG/PNG of the right size: no generation loss
    example = {"image": encoded, "path": os.path.relpath(path, root)}
    if sketch is not None:
        example["sketch"] = _encode(_fit(sketch, max_side), lossless=True)
    return _Packed(example, notes=tuple(notes))


class _ImageFolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder over a fixed (train, validation) assignment of image files."""

    RELEASE_NOTES = {VERSION: "Packed by python -m jaxcolor.prepare."}
    VERSION = tfds.core.Version(VERSION)

    def __init__(
        self,
        *,
        files: dict[str, list[str]],
        root: str,
        layout: str,
        max_side: int,
        workers: int,
        summary: Summary,
        **kwargs,
    ):
        self._files, self._root, self._layout = files, root, layout
        self._max_side, self._workers, self._summary = max_side, workers, summary
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "path": tfds.features.Text(),  # relative to the packed folder, to trace an example
        }
        if self._layout == "paired":
            features["sketch"] = tfds.features.Image(shape=(None, None, 1))
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Colour images packed by jaxcolor.prepare from {self._root} "
            f"(layout={self._layout}, max side {self._max_side or 'unchanged'} px).",
            features=tfds.features.FeaturesDict(features),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split) for split, files in self._files.items()}

    def _generate_examples(self, split: str):
        files = self._files[split]
        pack = functools.partial(
            _pack_file, root=self._root, layout=self._layout, max_side=self._max_side
        )
        written = 0
        with concurrent.futures.ThreadPoolExecutor(self._workers) as pool:
            # PIL and OpenCV release the GIL, so threads decode in parallel; map keeps order.
            results = pool.map(pack, files)
            for path, packed in tqdm.tqdm(
                zip(files, results, strict=True), total=len(files), desc=f"Packing {split}"
            ):
                if packed.example is None:
                    self._summary.skipped.append((path, packed.why))
                    continue
                self._summary.converted.update(packed.notes)
                written += 1
                yield packed.example["path"], packed.example
        self._summary.written[split] = written


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"--name {name!r}: use lower-case letters, digits and underscores, starting with a "
            "letter (it becomes data.source='tfds:NAME')."
        )
    if name in tfds.list_builders(with_community_datasets=False):
        raise ConfigError(
            f"--name {name!r} is a TFDS catalogue dataset; pick another name so that "
            "tfds:NAME finds your images rather than the catalogue's builder."
        )


def _default_name(images: str) -> str:
    """A dataset name from the folder name: 'My Art-2024' -> 'my_art_2024'."""
    stem = re.sub(r"[^a-z0-9]+", "_", epath.Path(images).name.lower()).strip("_")
    return stem if stem and stem[0].isalpha() else f"images_{stem}".rstrip("_")


def _build(name: str, data_dir: str, **kwargs) -> None:
    """Runs the TFDS builder of dataset `name` over `kwargs['files']` into local `data_dir`."""
    builder = types.new_class(
        "".join(part.title() for part in name.split("_")),
        (_ImageFolderBuilder,),
        {"skip_registration": True},
        lambda ns: ns.update(name=name),
    )(**kwargs, data_dir=data_dir, file_format="array_record")
    tfds.disable_progress_bar()  # ours counts files against the total
    builder.download_and_prepare()


def _check_written(summary: Summary, images: str, num_train: int) -> None:
    if not summary.written.get("train"):
        raise InputError(
            f"--images {images!r}: none of the {num_train} training files could be used "
            f"({len(summary.skipped)} skipped: "
            + "; ".join(f"{p}: {w}" for p, w in summary.skipped[:5])
            + "). Nothing was written."
        )


def _storage_error(option: str, url: epath.Path, what: str, e: Exception) -> ConfigError:
    return ConfigError(
        f"{option} {url}: {what} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else e!r}); check that the bucket exists and that "
        "these credentials may write to it."
    )


def _check_writable(out: epath.Path) -> None:
    """Before packing for minutes: a probe object proves that `out` (gs://...) takes writes."""
    probe = out / ".jaxcolor-write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except Exception as e:  # any storage client's refusal: no bucket, 403, no credentials
        raise _storage_error("--out", out, "cannot be written", e) from e


def _upload(local: pathlib.Path, target: epath.Path) -> None:
    """Copies the packed dataset directory up to `target` (gs://...), one progress step a file."""
    import fsspec
    from fsspec.callbacks import TqdmCallback

    fs, remote = fsspec.core.url_to_fs(os.fspath(target))
    files = sorted(str(p) for p in local.rglob("*") if p.is_file())
    callback = TqdmCallback(tqdm_kwargs={"desc": f"Uploading to {target}", "unit": "file"})
    try:
        fs.put(files, [f"{remote}/{os.path.relpath(f, local)}" for f in files], callback=callback)
    except Exception as e:  # any storage client's refusal: 403, expired credentials
        raise _storage_error("--out", target, "the upload failed", e) from e


def prepare(
    images: str,
    out: str,
    name: str | None = None,
    *,
    val_fraction: float = 0.02,
    max_side: int = 512,
    layout: str = "single",
    overwrite: bool = False,
    seed: int = 0,
    workers: int | None = None,
) -> Summary:
    """Packs the images under `images` into the TFDS dataset `name` under `out`."""
    name = name or _default_name(images)
    _check_name(name)
    if layout not in decode.LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: use one of {', '.join(decode.LAYOUTS)}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val_fraction {val_fraction}: use a share in [0, 1), e.g. 0.02.")
    if max_side < 0:
        raise ConfigError(f"--max_side {max_side}: use a size in px, or 0 to keep sizes.")
    try:
        folder = ImageFolderSource(images)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--images {images!r}: {e}") from e
    train, val = folder.split(val_fraction, seed=seed)
    files = {"train": train.paths}
    if val.paths and val.paths != train.paths:
        files["validation"] = val.paths
    target = epath.Path(out) / name / VERSION
    if target.exists():
        if not overwrite:
            raise ConfigError(
                f"{target} already exists; pass --overwrite to replace it or choose another --name."
            )
        target.rmtree()
    summary = Summary(directory=os.fspath(target))
    build = functools.partial(
        _build,
        name,
        files=files,
        root=os.fspath(folder.root),
        layout=layout,
        max_side=max_side,
        workers=workers or min(8, os.cpu_count() or 1),
        summary=summary,
    )
    if "://" in os.fspath(out):
        # ArrayRecord's writer opens local files only: pack on this disk, then upload.
        _check_writable(epath.Path(out))
        with tempfile.TemporaryDirectory(prefix="jaxcolor-prepare-") as staging:
            build(staging)
            _check_written(summary, images, len(train.paths))
            _upload(pathlib.Path(staging) / name / VERSION, target)
    else:
        build(out)
        if not summary.written.get("train"):
            target.rmtree(missing_ok=True)
        _check_written(summary, images, len(train.paths))
    (target / REPORT).write_text(
        json.dumps(
            {
                "images": os.fspath(folder.root),
                "layout": layout,
                "max_side": max_side,
                "val_fraction": val_fraction,
                "seed": seed,
                "written": summary.written,
                "converted": dict(summary.converted),
                "skipped": [{"file": p, "why": w} for p, w in summary.skipped],
                "extensions": list(IMAGE_EXTENSIONS),
            },
            indent=2,
        )
    )
    return summary

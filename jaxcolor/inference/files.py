"""`python -m jaxcolor.colorize`'s files: a sketch or a glob of them, the hint image (one file
or a same-named one per sketch in a directory), the output paths, and `colorize_files`, which
reads, prepares (jaxcolor.inference.inputs), colorizes and writes each. Imports no JAX.
"""

from __future__ import annotations

import glob
import pathlib
import re
from collections.abc import Sequence

import cv2

from jaxcolor.core.errors import InputError
from jaxcolor.core.image_files import IMAGE_EXTENSIONS
from jaxcolor.data import hints as hints_lib
from jaxcolor.inference.inputs import check_options, prepare_inputs, read_image, reference_image
from jaxcolor.inference.runtime import Colorizer

_GLOB_CHARS = re.compile(r"[*?\[]")


def expand_sketches(pattern: str) -> list[pathlib.Path]:
    """A file, or a glob ('dir/*.png') -> sorted files; errors when nothing matches."""
    if _GLOB_CHARS.search(pattern):
        files = sorted(pathlib.Path(p) for p in glob.glob(pattern, recursive=True))
        files = [p for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise InputError(
                f"--sketch {pattern!r} matches no image files ({', '.join(IMAGE_EXTENSIONS)})."
            )
        return files
    path = pathlib.Path(pattern)
    if not path.exists():
        raise InputError(f"Sketch {path} does not exist.")
    return [path]


def hints_for(sketch: pathlib.Path, hints: str | None) -> pathlib.Path | None:
    """--hints: one image for every sketch, or a directory with a same-named image per sketch."""
    if hints is None:
        return None
    path = pathlib.Path(hints)
    if path.is_dir():
        for suffix in (sketch.suffix, *IMAGE_EXTENSIONS):
            candidate = path / (sketch.stem + suffix)
            if candidate.is_file():
                return candidate
        raise InputError(
            f"--hints directory {path} has no image named {sketch.stem}.* for {sketch}."
        )
    if not path.exists():
        raise InputError(f"Hints image {path} does not exist.")
    return path


def output_paths(sketches: Sequence[pathlib.Path], out: str) -> list[pathlib.Path]:
    """One sketch and an image name -> that file; otherwise OUT is a directory of <stem>.png."""
    out_path = pathlib.Path(out)
    if len(sketches) == 1 and out_path.suffix.lower() in IMAGE_EXTENSIONS and not out_path.is_dir():
        return [out_path]
    if out_path.suffix.lower() in IMAGE_EXTENSIONS and not out_path.is_dir():
        raise InputError(
            f"--out {out} is a file name but --sketch matched {len(sketches)} files; give a "
            "directory."
        )
    paths = [out_path / f"{s.stem}.png" for s in sketches]
    if len(set(paths)) != len(paths):
        raise InputError("Several sketches share a file name; colorize them in separate runs.")
    inputs = {s.resolve() for s in sketches}
    clash = [p for p in paths if p.resolve() in inputs]
    if clash:
        raise InputError(
            f"--out {out} would overwrite the sketch {clash[0]}; choose another --out."
        )
    return paths


def colorize_files(
    model: Colorizer,
    sketch: str,
    out: str,
    *,
    hints: str | None = None,
    hint_points: str | None = None,
    size: int | None = None,
    point_size: int = hints_lib.INFERENCE_POINT_SIZE,
    reference: str | None = None,
) -> list[pathlib.Path]:
    """Colorizes every sketch matching `sketch`; returns the written image paths.

    `reference`: the colour image a reference-guided model takes its colours from (required
    for those models, refused for the others).
    """
    clicks = check_options(
        model,
        hints=hints is not None,
        hint_points=hint_points,
        reference=reference is not None,
        size=size,
        point_size=point_size,
    )
    sketches = expand_sketches(sketch)
    outputs = output_paths(sketches, out)
    hint_files = [hints_for(path, hints) for path in sketches]  # fail before the slow part
    reference_u8 = None
    if reference is not None:
        reference_u8 = reference_image(reference, model.image_size)
    for path, hint_file, dest in zip(sketches, hint_files, outputs, strict=True):
        image = read_image(path, "Sketch")
        hint_image = None if hint_file is None else read_image(hint_file, "Hints image")
        sketch_u8, hint_u8 = prepare_inputs(
            model,
            image,
            hint_image=hint_image,
            clicks=clicks,
            size=size,
            point_size=point_size,
            sketch_name=f"sketch {path}",
            hints_name=f"Hints image {hint_file}",
        )
        rgb = model(sketch_u8, hint_u8, reference_u8)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dest), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError(f"Could not write {dest} (unsupported extension or not writable).")
    return outputs

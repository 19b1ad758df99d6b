"""The serving runtime: an exported generator loaded in PyTorch (`load` -> `Colorizer`), one
image's padded [-1, 1] tensors (`Colorizer.prepare` -> `Prepared`) and batched forward passes
over images of one padded shape (`Colorizer.run`). Imports no JAX.

The inputs are scaled as in training (jaxcolor.nets.inputs.model_inputs): the sketch as one
grayscale channel, then the hint channels, all from uint8 to [-1, 1]. Any size works: the image is
padded to a multiple of 2**num_downs and the output cropped back.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jaxcolor.core.errors import InputError
from jaxcolor.core.image_size import hw
from jaxcolor.export import torch_models


@dataclasses.dataclass
class Colorizer:
    """An exported generator ready to run, with the input layout from its config.json."""

    generator: torch.nn.Module
    config: dict
    device: torch.device

    @property
    def hints(self) -> str:
        return self.config["inputs"]["hints"]

    @property
    def multiple(self) -> int:
        return int(self.config["inputs"]["size_multiple"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the training images (config.json: an int if square, or [h, w])."""
        return hw(self.config["inputs"]["image_size"])

    @property
    def takes_reference(self) -> bool:
        """Reference-guided models take a colour reference image besides the sketch."""
        return "reference" in self.config["inputs"]

    def __call__(
        self, sketch: np.ndarray, hint_channels: np.ndarray, reference: np.ndarray | None = None
    ) -> np.ndarray:
        """uint8 (H, W, 1) sketch + uint8 (H, W, C) hints (+ uint8 (H', W', 3) reference for
        reference-guided models) -> uint8 (H, W, 3) RGB."""
        return self.run([self.prepare(sketch, hint_channels, reference)])[0]

    def prepare(
        self, sketch: np.ndarray, hint_channels: np.ndarray, reference: np.ndarray | None = None
    ) -> Prepared:
        """uint8 inputs -> the padded [-1, 1] tensors of one image (on the CPU), for `run`."""
        condition = np.concatenate([sketch, hint_channels], axis=-1)
        x = torch.from_numpy(np.ascontiguousarray(condition)).permute(2, 0, 1)[None].float()
        x = x / 127.5 - 1.0
        h, w = x.shape[-2:]
        r = None
        if self.takes_reference:
            if reference is None:
                raise InputError(
                    "This model is reference-guided: pass --reference IMAGE, a colour image "
                    "whose colours the result takes."
                )
            r = torch.from_numpy(np.ascontiguousarray(reference))
            r = r.permute(2, 0, 1)[None].float() / 127.5 - 1.0
        return Prepared(pad_to_multiple(x, self.multiple), (h, w), r)

    def run(self, items: Sequence[Prepared]) -> list[np.ndarray]:
        """One forward pass over images of one padded shape (`Prepared.key`) -> uint8 RGB each.

        Every network of the family is per-example in eval mode (BatchNorm's running
        statistics, instance norm), so an image's output does not depend on its batch mates.
        """
        if len({item.key for item in items}) != 1:
            raise ValueError(f"run() takes one padded shape, got {[i.key for i in items]}")
        inputs = [torch.cat([item.x for item in items]).to(self.device)]
        if self.takes_reference:
            inputs.append(torch.cat([item.reference for item in items]).to(self.device))
        with torch.inference_mode():
            y = self.generator(*inputs)
        y = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
        outputs = []
        for i, item in enumerate(items):
            (h, w), (ph, pw) = item.hw, item.x.shape[-2:]
            top, left = (ph - h) // 2, (pw - w) // 2
            outputs.append(y[i, :, top : top + h, left : left + w].permute(1, 2, 0).numpy())
        return outputs


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One image's generator inputs: the padded condition (1, C, H', W') in [-1, 1], the size
    to crop the output back to, and the reference (1, 3, h, w) of reference-guided models."""

    x: torch.Tensor
    hw: tuple[int, int]
    reference: torch.Tensor | None = None

    @property
    def key(self) -> tuple:
        """Images with equal keys can share one forward pass."""
        ref = None if self.reference is None else tuple(self.reference.shape)
        return (tuple(self.x.shape), ref)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pads (B, C, H, W) evenly on both sides to multiples of `multiple`.

    Reflection continues lines and colour regions the way the training crops (cut from larger
    pictures) continue past their border; replicate would smear every border pixel into a
    stripe. Reflection needs the pad to be smaller than the side, so tiny images replicate.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, pads, mode=mode)


def load(model_dir: str | pathlib.Path, device: str | None = None) -> Colorizer:
    """Export directory -> Colorizer on `device` (default: cuda if available, else cpu)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: this PyTorch has no CUDA device; use --device cpu.")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"--device {device!r} is not a PyTorch device: {e}") from e
    generator, config = torch_models.load(model_dir, "generator", device=dev)
    if config["task"] != "colorize":
        raise InputError(
            f"{model_dir} is a sketch extractor (task={config['task']!r}: colour image in, "
            "sketch out), not a colorizer; train a colorizer with "
            f"--config.data.sketch='model:{model_dir}' to use it."
        )
    return Colorizer(generator, config, dev)

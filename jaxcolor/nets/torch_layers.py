"""PyTorch blocks shared by the families' twins (NCHW); imports no JAX."""

from __future__ import annotations

from torch import nn

from jaxcolor.core.errors import ExportError
from jaxcolor.nets.base import NORMS


def norm_layer(norm: str, channels: int) -> nn.Module:
    """pix2pix's norms: BatchNorm2d, InstanceNorm2d(affine=False, no running stats), Identity."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, eps=1e-5, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ExportError(f"Unknown norm {norm!r}; expected one of {NORMS}.")

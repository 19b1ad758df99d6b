"""Cloud TPU slice types (gcloud's `--accelerator-type`, e.g. v5litepod-8, v5p-64, v4-32) ->
chips, hosts, the compile-only topology and the chip's published figures. Pure Python: config
files read it before JAX starts (configs/pod.py sizes its batch with it).

Figures are Google's published per-chip numbers (cloud.google.com/tpu/docs/<version>): HBM
capacity, HBM bandwidth and peak dense bf16 FLOP/s. Topology names and host layouts follow
MaxText's accelerator_to_spec_map.py: v4 and v5p count two TensorCores per chip in the type's
number and run them as one JAX device (megacore); every multi-host slice has 4 chips per host
(8 on a single-host v5e/v6e-8).
"""

from __future__ import annotations

import dataclasses
import re

from jaxcolor.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU generation's chip, as JAX sees it (one device per chip)."""

    family: str  # the gcloud type's prefix: v4, v5p, v5litepod, v6e
    topology_prefix: str  # libtpu's name: "v4:2x2x2", "v5:2x4x4", "v5e:2x4", "v6e:2x4"
    chip_config: str  # "megacore" (two cores as one device) or "default"
    cores_per_chip: int  # in the gcloud type's number (v4-32 = 16 chips)
    hbm_gib: float
    hbm_bytes_per_s: float
    peak_bf16_flops: float
    dims: int  # 3-D torus (v4, v5p) or 2-D (v5e, v6e)


CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", "v4", "megacore", 2, 32.0, 1200e9, 275e12, 3),
    "v5p": Chip("v5p", "v5", "megacore", 2, 95.0, 2765e9, 459e12, 3),
    "v5litepod": Chip("v5litepod", "v5e", "default", 1, 16.0, 819e9, 197e12, 2),
    "v6e": Chip("v6e", "v6e", "default", 1, 32.0, 1640e9, 918e12, 2),
}
# chips -> chip grid of each slice shape Cloud TPU sells (smaller dimensions first).
_GRIDS_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16),
             256: (16, 16)}  # fmt: skip
_GRIDS_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4),
             128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8), 1024: (8, 8, 16)}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Slice:
    """A gcloud accelerator type resolved to its chips, hosts and libtpu topology."""

    name: str
    chip: Chip
    grid: tuple[int, ...]
    chips_per_host_bounds: tuple[int, int, int]
    wrap: tuple[bool, bool, bool]

    @property
    def chips(self) -> int:
        n = 1
        for d in self.grid:
            n *= d
        return n

    @property
    def hosts(self) -> int:
        per_host = 1
        for d in self.chips_per_host_bounds:
            per_host *= d
        return self.chips // per_host

    @property
    def topology_name(self) -> str:
        return f"{self.chip.topology_prefix}:{'x'.join(map(str, self.grid))}"


def known_types() -> list[str]:
    """Every accelerator type `slice_of` knows, e.g. ["v4-8", ..., "v6e-256"]."""
    out = []
    for chip in CHIPS.values():
        grids = _GRIDS_3D if chip.dims == 3 else _GRIDS_2D
        out += [f"{chip.family}-{n * chip.cores_per_chip}" for n in grids]
    return out


def slice_of(accelerator_type: str, option: str = "--topology") -> Slice:
    """An accelerator type ("v5litepod-8") -> its Slice; an unknown type raises ConfigError
    naming `option` and listing the known ones."""
    m = re.fullmatch(r"(v4|v5p|v5litepod|v6e)-(\d+)", accelerator_type.strip())
    chip = CHIPS[m.group(1)] if m else None
    grids = (_GRIDS_3D if chip.dims == 3 else _GRIDS_2D) if chip else {}
    chips = int(m.group(2)) // chip.cores_per_chip if m else 0
    if chips not in grids or (m and int(m.group(2)) % chip.cores_per_chip):
        raise ConfigError(
            f"{option}={accelerator_type!r} is not a known Cloud TPU accelerator type; use one "
            f"of: {', '.join(known_types())} (gcloud's --accelerator-type names)."
        )
    grid = grids[chips]
    if chip.dims == 2:
        per_host = (2, 4, 1) if chips == 8 else (grid[0], grid[1], 1) if chips < 8 else (2, 2, 1)
        wrap = (grid[0] == 16, grid[1] == 16, False)
    else:
        per_host = (2, 2, 1)
        wrap = (True, True, True) if min(grid) >= 4 else (False, False, False)
    return Slice(accelerator_type, chip, grid, per_host, wrap)


def chip_of(accelerator_type: str) -> Chip:
    """The chip of an accelerator type ("v5p-64" -> CHIPS["v5p"])."""
    return slice_of(accelerator_type).chip

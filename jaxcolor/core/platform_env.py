"""Which JAX platforms an entry point lets JAX initialise, decided from the host's device files.

The `tpu` and `test` extras install libtpu (`bench aot` compiles for a Cloud TPU slice through
its compile-only topology). Installed, JAX initialises it in every process, and on a host with
no TPU it prints `E0000 ... unexpected worker hostname` errors and warnings about the TPU
environment before falling back to the CPU. `skip_absent_tpu()` keeps JAX on the CPU instead
where the host has no accelerator device at all; a TPU VM (its chips are device files) and a
GPU host keep JAX's own choice, and so does anyone who sets JAX_PLATFORMS. Pure Python: it runs
before JAX is imported.
"""

from __future__ import annotations

import glob
import os
import pathlib
import sys

# A Cloud TPU chip: /dev/accel<N> (v2 to v5e) or a VFIO group /dev/vfio/<N> (v5p, v6e and
# later); or Google's PCI vendor id, what JAX itself reads (jax._src.hardware_utils).
TPU_DEVICE_FILES = ("/dev/accel*", "/dev/vfio/[0-9]*")
GOOGLE_PCI_VENDOR = "0x1ae0"
PCI_VENDOR_FILES = "/sys/bus/pci/devices/*/vendor"
# A GPU JAX may use: NVIDIA (as jax._src.hardware_utils lists them; /dev/dxg under WSL2) or AMD.
GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


def _google_pci_device() -> bool:
    for vendor in glob.glob(PCI_VENDOR_FILES):
        try:
            if pathlib.Path(vendor).read_text().strip() == GOOGLE_PCI_VENDOR:
                return True
        except OSError:
            continue
    return False


def has_accelerator() -> bool:
    """Whether the host has a TPU or GPU device file (a TPU VM, a GPU host)."""
    return (
        any(glob.glob(pattern) for pattern in TPU_DEVICE_FILES)
        or any(os.path.exists(path) for path in GPU_DEVICE_FILES)
        or _google_pci_device()
    )


def skip_absent_tpu() -> None:
    """JAX_PLATFORMS=cpu on a host with no accelerator device file, unless JAX_PLATFORMS is set.

    Call it first in an entry point's main, before anything initialises a JAX backend; it
    also applies when JAX is already imported (its flags read the environment at import).
    Child processes (Grain workers, `bench quality`'s runs) inherit it.
    """
    if "JAX_PLATFORMS" in os.environ or has_accelerator():
        return
    os.environ["JAX_PLATFORMS"] = "cpu"
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_platforms", "cpu")

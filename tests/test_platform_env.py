"""platform_env.skip_absent_tpu: JAX stays on the CPU, quietly, only where no accelerator is."""

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import REPO

from jaxcolor.core import platform_env


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake /dev and /sys: the device files the decision reads, none present at first."""
    dev, pci = tmp_path / "dev", tmp_path / "sys" / "0000:00:04.0"
    (dev / "vfio").mkdir(parents=True)
    (dev / "vfio" / "vfio").touch()  # the VFIO control file of any host, not a device
    pci.mkdir(parents=True)
    (pci / "vendor").write_text("0x8086\n")
    monkeypatch.setattr(platform_env, "TPU_DEVICE_FILES", (f"{dev}/accel*", f"{dev}/vfio/[0-9]*"))
    monkeypatch.setattr(platform_env, "GPU_DEVICE_FILES", (f"{dev}/nvidia0", f"{dev}/kfd"))
    monkeypatch.setattr(platform_env, "PCI_VENDOR_FILES", f"{tmp_path}/sys/*/vendor")
    monkeypatch.delenv("JAX_PLATFORMS")
    return dev, pci


def test_no_accelerator_keeps_jax_on_the_cpu(host):
    platform_env.skip_absent_tpu()
    assert os.environ["JAX_PLATFORMS"] == "cpu"


@pytest.mark.parametrize("device", ["accel0", "vfio/0", "nvidia0", "kfd", "google-pci"])
def test_an_accelerator_keeps_jaxs_own_choice(host, device):
    dev, pci = host
    if device == "google-pci":
        (pci / "vendor").write_text(platform_env.GOOGLE_PCI_VENDOR + "\n")
    else:
        (dev / device).touch()
    platform_env.skip_absent_tpu()
    assert "JAX_PLATFORMS" not in os.environ


@pytest.mark.parametrize("value", ["", "tpu", "cuda,cpu"])
def test_the_users_jax_platforms_wins(host, monkeypatch, value):
    monkeypatch.setenv("JAX_PLATFORMS", value)
    platform_env.skip_absent_tpu()
    assert os.environ["JAX_PLATFORMS"] == value


@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None or platform_env.has_accelerator(),
    reason="needs libtpu installed on a host without a TPU or GPU",
)
def test_an_installed_libtpu_prints_nothing_where_there_is_no_tpu():
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    env["PYTHONPATH"] = str(REPO)
    # libtpu gives up quietly while another process holds /tmp/libtpu_lockfile; without the lock
    # it always initialises, so both runs below see what a lone process sees.
    env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"

    def devices(skip: bool) -> subprocess.CompletedProcess:
        code = (
            "from jaxcolor.core import platform_env\n"
            f"{'platform_env.skip_absent_tpu()' if skip else ''}\n"
            "import jax\n"
            "print(jax.devices()[0].platform)\n"
        )
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )

    unguarded = devices(skip=False)  # what the entry points printed before skip_absent_tpu
    assert unguarded.returncode == 0 and "E0000" in unguarded.stderr, unguarded.stderr
    done = devices(skip=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cpu"
    assert done.stderr == "", done.stderr  # no libtpu E0000 lines, no TPU warnings

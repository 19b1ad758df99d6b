"""bench aot: the real steps compiled for Cloud TPU slices by libtpu on this CPU host.

The process backend stays XLA:CPU (conftest sets JAX_PLATFORMS=cpu); only the compile-only
devices are TPUs.
"""

import json
import os
import subprocess
import sys

import jax
import pytest
from conftest import REPO, SMALL_OVERRIDES
from flax import nnx

from jaxcolor import bench, parallel
from jaxcolor.core import accelerators
from jaxcolor.core.errors import ConfigError
from jaxcolor.nets.layers import UpConv
from jaxcolor.training.state import abstract_train_state

pytest.importorskip("libtpu", reason="bench aot needs libtpu (the test extra installs it)")

TINY = [
    "--config",
    str(REPO / "configs" / "tiny.py"),
    *SMALL_OVERRIDES,
    "--config.eval_batch_size=8",
]


@pytest.fixture(scope="module", autouse=True)
def _restore_environment():
    """topology_devices sets libtpu's TPU_* variables for this process: the later test files
    of this worker (and their subprocesses) get the environment they had."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _aot(*args):
    return bench.main(["aot", *TINY, *args])


def test_tiny_config_fits_a_v5litepod_8(capsys, tmp_path):
    r = _aot("--topology", "v5litepod-8", "--json", str(tmp_path / "aot.json"))
    assert json.loads((tmp_path / "aot.json").read_text())["train"] == r["train"]
    assert (r["hosts"], r["chips"], r["device_kind"]) == (1, 8, "TPU v5 lite")
    assert r["fits"] and 0 < r["train"]["peak_gib"] < r["hbm_gib"] == 16.0
    assert 0 < r["eval"]["peak_gib"] < r["hbm_gib"]
    assert r["upsample_impl"] == "conv_transpose"  # the TPU formulation, on a CPU process
    # The TPU compiler's FLOPs agree with the families' analytic count.
    assert 0.8 < r["xla_over_analytic"] < 1.3
    assert r["roofline_step_s"] > 0 and 0 < r["flops_utilization_ceiling"] <= 1
    assert r["mfu_ceiling"] == pytest.approx(
        r["flops_utilization_ceiling"] / r["xla_over_analytic"]
    )
    assert "fits" in capsys.readouterr().err
    assert jax.default_backend() == "cpu"


def test_tiny_config_on_a_two_host_v4_16_reports_each_hosts_share(tmp_path):
    # The host input report against this host's own `bench data` figure (--data_json).
    data = tmp_path / "data.json"
    bench.main(
        ["data", *TINY, "--workers", "0", "--files", "4", "--source_size", "64",
         "--batch_size", "4", "--batches", "1", "--warmup", "0", "--json", str(data)]
    )  # fmt: skip
    # A TPU slice takes the device path (data.derive="auto"): its rows are the figure.
    rows = json.loads(data.read_text())["results"]
    per_core = max(row["images_per_core_s"] for row in rows if row["derive"] == "device")
    r = _aot("--topology", "v4-16", "--batch_size", "2", "--no_eval", "--data_json", str(data))
    assert (r["hosts"], r["chips"], r["chips_per_host"]) == (2, 8, 4)
    assert (r["batch_size"], r["per_host_batch"]) == (16, 8)
    assert r["fits"] and r["train"]["peak_gib"] < r["hbm_gib"] == 32.0
    assert r["derive"] == "device" and 0 < r["derive_cost"]["share_of_step_flops"] < 1
    host = r["host_input"]
    assert host["images_per_s_needed"] == pytest.approx(8 / r["roofline_step_s"])
    assert host["images_per_core_s"] == per_core != 295.0
    assert host["cores_needed"] == pytest.approx(host["images_per_s_needed"] / per_core)
    assert host["host_vcpus"] == 240


def test_search_brackets_the_largest_batch_between_a_fit_and_a_rejection():
    # 64 px: about 41k images per chip fit on a v5e (libtpu 0.0.42.1). Starting from 32768 and
    # searching to within 16384 costs one full compile; rejections are fast.
    r = _aot("--config.image_size=64", "--topology", "v5litepod-1", "--no_eval",
             "--batch_size", "32768", "--search", "--search_step", "16384")  # fmt: skip
    best, tried = r["max_per_chip_batch"], r["search_tried"]
    assert best >= 32768 and r["search_step"] == 16384 and tried
    assert all(t["fits"] == (t["per_chip_batch"] <= best) for t in tried)
    rejected = min(t["per_chip_batch"] for t in tried if not t["fits"])
    assert 0 < rejected - best <= 16384
    assert r["max_batch_peak_gib"] <= r["compiler_hbm_limit_gib"] < r["hbm_gib"]


def test_oversize_batch_is_one_line_with_the_compilers_figure(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # 64 px and 2**21 images per chip: far over a v5e's HBM, rejected at buffer assignment.
    cmd = [sys.executable, "-m", "jaxcolor.bench", "aot", *TINY, "--config.image_size=64",
           "--topology", "v5litepod-4", "--batch_size", str(2**21), "--no_eval"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("jaxcolor.bench: error: does not fit: the train step at batch_size=")
    assert "GiB of HBM per chip, the chip has 15.75 GiB (the TPU compiler's figure)" in last


def test_unknown_topology_lists_the_known_ones_and_missing_libtpu_says_how_to_install(
    monkeypatch,
):
    with pytest.raises(SystemExit) as exit_:
        _aot("--topology", "v5litepod-3")
    text = str(exit_.value.code)
    assert text.startswith("jaxcolor.bench: error: --topology='v5litepod-3' is not a known")
    assert "v4-32, " in text and "v5p-64, " in text and "v6e-8, " in text and "\n" not in text
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "libtpu" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'jaxcolor\[tpu\]'"):
        parallel.topology_devices("v5litepod-8")


def test_known_slices_have_the_published_shapes():
    shapes = {
        name: (s.topology_name, s.hosts, s.chips)
        for name in ("v5litepod-8", "v5litepod-256", "v5p-64", "v4-32", "v6e-8", "v4-16")
        for s in [accelerators.slice_of(name)]
    }
    assert shapes == {
        "v5litepod-8": ("v5e:2x4", 1, 8),
        "v5litepod-256": ("v5e:16x16", 64, 256),
        "v5p-64": ("v5:2x4x4", 8, 32),
        "v4-32": ("v4:2x2x4", 4, 16),
        "v6e-8": ("v6e:2x4", 1, 8),
        "v4-16": ("v4:2x2x2", 2, 8),
    }
    # Two v5litepod-16 slices: 32 chips on 8 hosts (each slice numbers its hosts from 0).
    two = parallel.create_mesh(-1, devices=parallel.topology_devices("v5litepod-16", num_slices=2))
    assert (two.devices.size, parallel.process_count(two)) == (32, 8)


def _upsample_impls(config, mesh) -> set[str]:
    state, nets = abstract_train_state(config, sharding=parallel.replicated(mesh))
    model = nnx.merge(nets.g_graph, state.g.params, state.g.stats)
    return {m.impl for _, m in nnx.iter_modules(model) if isinstance(m, UpConv)}


def test_auto_upsampling_follows_the_mesh_not_the_process_backend(tiny_config):
    assert jax.default_backend() == "cpu"
    tpu = parallel.create_mesh(-1, devices=parallel.topology_devices("v5litepod-8"))
    assert parallel.platform(tpu) == "tpu" and parallel.process_count(tpu) == 1
    assert _upsample_impls(tiny_config, tpu) == {"conv_transpose"}
    assert _upsample_impls(tiny_config, parallel.create_mesh(-1)) == {"subpixel"}


def test_frozen_networks_compile_from_their_shapes_without_weight_files(tmp_path):
    """A VGG-loss config and a data.sketch="model:DIR" one compile with no weights file: the
    frozen networks are shapes too (the extractor's config.json is all that is read)."""
    from conftest import load_config

    from jaxcolor.export import config_json

    extractor = load_config("sketch_extractor")
    extractor.update(image_size=32, compute_dtype="float32")
    extractor.model.generator.update(ngf=4, num_downs=2)
    cfg = config_json.make_config_json(
        extractor.to_dict(), step=0, version="0", with_discriminator=False
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg))  # no weights file next to it
    r = _aot(
        "--topology", "v5litepod-4", "--no_eval",
        "--config.loss.perceptual_weight=0.01", "--config.loss.style_weight=50",
        f"--config.loss.vgg_weights={tmp_path / 'absent-vgg19.pth'}",
        f"--config.data.sketch=model:{tmp_path}",
    )  # fmt: skip
    assert r["fits"] and 0 < r["train"]["peak_gib"] < r["hbm_gib"]
    # The analytic count has VGG-19's forwards (and the extractor's): XLA agrees with it.
    assert 0.8 < r["xla_over_analytic"] < 1.3

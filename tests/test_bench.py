"""`python -m jaxcolor.bench`: the subcommands run and report their figures (no speed asserted)."""

import json

import pytest
from conftest import REPO
from conftest import SMALL_OVERRIDES as SMALL

from jaxcolor import bench
from jaxcolor.run import benchmark

TINY = str(REPO / "configs" / "tiny.py")


def test_bench_train_reports_throughput_flops_and_mfu(tmp_path):
    out = tmp_path / "train.json"
    result = bench.main(["train", "--config", TINY, "--steps", "2", "--json", str(out), *SMALL])
    assert json.loads(out.read_text())["images_per_s"] == pytest.approx(result["images_per_s"])
    assert result["devices"] == 8 and result["batch_size"] == 8
    assert result["step_s"] > 0 and result["compile_s"] > 0
    assert result["images_per_s_per_device"] == pytest.approx(result["images_per_s"] / 8)
    # XLA's count and the analytic conv count describe the same step.
    assert 0.5 < result["xla_over_analytic"] < 2.0
    assert result["mfu"] == "unknown" and result["peak_memory_bytes"] == "n/a"  # XLA:CPU


def test_bench_e2e_and_compare_run_with_the_real_pipeline_and_pytorch(capsys):
    e2e = bench.main(["e2e", "--config", TINY, "--steps", "2", *SMALL])
    assert e2e["data_wait_s"] > 0 and isinstance(e2e["input_bound"], bool)
    pytest.importorskip("torch")
    compare = bench.main(
        ["compare", "--config", TINY, "--steps", "1", "--torch_variants", "eager_fp32", *SMALL]
    )
    (torch_result,) = compare["torch"]
    assert torch_result["input_shape_nchw"] == [8, 4, 32, 32]
    assert compare["jax_over_best_torch"] == pytest.approx(torch_result["jax_over_torch"])
    assert '"jax_over_best_torch"' in capsys.readouterr().out


def test_analytic_flops_and_peak_table():
    from jaxcolor.config import discriminator

    d = discriminator("patchgan", ndf=2, n_layers=1)  # a complete section, as configs build it
    # 8 px, 1 channel: conv s2 -> 4x4x2, conv s1 -> 3x3x4, head -> 2x2x1; 16 taps each.
    macs = 16 * (4 * 4 * 1 * 2 + 3 * 3 * 2 * 4 + 2 * 2 * 4 * 1)
    assert benchmark.discriminator_forward_flops(d, 1, 8) == 2 * macs

    class Device:
        def __init__(self, kind):
            self.device_kind = kind

    assert benchmark.peak_flops(Device("TPU v5 lite")) == 197e12
    assert benchmark.peak_flops(Device("TPU v5")) == 459e12
    assert benchmark.peak_flops(Device("NVIDIA H100 80GB HBM3")) == 989e12
    assert benchmark.peak_flops(Device("cpu")) is None

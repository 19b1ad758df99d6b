"""The pix2pix GAN step (Isola et al. 2017) in PyTorch, as PyTorch projects train it, for
side-by-side speed.

    python -m jaxcolor.torch_bench [--image_size 256] [--batch 4] [--steps 3]
        [--variants eager_fp32,eager_bf16_cl,compile] [--device cpu|cuda] [--ngf 64 ...]

Same networks as jaxcolor (pix2pix `UnetGenerator` + 70x70 `NLayerDiscriminator`, from
jaxcolor.nets.pix2pix.torch), same init (N(0, 0.02) convs, N(1, 0.02) BatchNorm scales), same
losses (GAN mode + lambda * L1) and Adam hyperparameters, and pix2pix's order in
`optimize_parameters`: G forward once, update D on (real, detached fake), then update G with D
frozen. Variants:
- `eager_fp32`: plain eager float32 (pix2pix as published);
- `eager_bf16_cl`: eager with `torch.autocast(bfloat16)` and channels_last tensors and weights;
- `compile`: `torch.compile` of both networks, float32.
Denormals: XLA:CPU flushes them to zero, PyTorch by default does not, and pix2pix's fp32 step
produces enough of them (small N(0, 0.02) weights and gradients) that eager fp32 ran ~7x slower
here (2.57 s vs 0.37 s per tiny step). `run` therefore calls `torch.set_flush_denormal(True)`
by default so the reference is as fast as PyTorch gets (`--keep_denormals` for pix2pix as
published). `python -m jaxcolor.bench compare` imports `run` from here (so this module is part
of the installed package; it needs PyTorch, `pip install 'jaxcolor[serve]'`); a variant that
fails (e.g. torch.compile without a C++ compiler) is reported as "failed: reason".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from typing import Any

import torch
from torch import nn

from jaxcolor.nets import registry
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR
from jaxcolor.nets.pix2pix.torch import NLayerDiscriminator, UnetGenerator

VARIANTS = ("eager_fp32", "eager_bf16_cl", "compile")


def init_weights(net: nn.Module, std: float = 0.02) -> None:
    """pix2pix's `init_weights(net, 'normal', 0.02)`."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def d_loss(mode: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """pix2pix's GANLoss for D: 0.5 * (loss(real, 1) + loss(fake, 0))."""
    if mode == "vanilla":
        bce = nn.functional.binary_cross_entropy_with_logits
        return 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    if mode == "lsgan":
        return 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
    if mode == "hinge":
        return 0.5 * (torch.relu(1 - real).mean() + torch.relu(1 + fake).mean())
    raise ValueError(f"gan mode {mode!r}")


def _g_gan_loss(mode: str, fake: torch.Tensor) -> torch.Tensor:
    if mode == "vanilla":
        return nn.functional.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if mode == "lsgan":
        return ((fake - 1) ** 2).mean()
    if mode == "hinge":
        return -fake.mean()
    raise ValueError(f"gan mode {mode!r}")


class Pix2Pix:
    """Both networks, their Adam optimizers and one `step(condition, target)`."""

    def __init__(self, arch: dict[str, Any], variant: str, device: str):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        torch.manual_seed(arch.get("seed", 0))
        self.mode, self.l1_weight = arch["gan_mode"], arch["l1_weight"]
        self.g = UnetGenerator(**arch["generator"]).to(device)
        self.d = NLayerDiscriminator(**arch["discriminator"]).to(device)
        init_weights(self.g)
        init_weights(self.d)
        self.channels_last = variant == "eager_bf16_cl"
        if self.channels_last:
            self.g = self.g.to(memory_format=torch.channels_last)
            self.d = self.d.to(memory_format=torch.channels_last)
        adam = dict(lr=arch["lr"], betas=(arch["b1"], arch["b2"]))
        self.opt_g = torch.optim.Adam(self.g.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.d.parameters(), **adam)
        self.g.train()
        self.d.train()
        self.g_fn, self.d_fn = self.g, self.d
        if variant == "compile":
            self.g_fn, self.d_fn = torch.compile(self.g), torch.compile(self.d)
        device_type = torch.device(device).type
        self.autocast = (
            (lambda: torch.autocast(device_type, dtype=torch.bfloat16))
            if self.channels_last
            else contextlib.nullcontext
        )

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def step(self, condition: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            fake = self.g_fn(condition)
        # D update on (real, detached fake).
        for p in self.d.parameters():
            p.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            real_logits = self.d_fn(torch.cat([condition, target], 1))
            fake_logits = self.d_fn(torch.cat([condition, fake.detach()], 1))
            loss_d = d_loss(self.mode, real_logits.float(), fake_logits.float())
        loss_d.backward()
        self.opt_d.step()
        # G update with D frozen, judged by the freshly updated D.
        for p in self.d.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.d_fn(torch.cat([condition, fake], 1))
            loss_g = (
                _g_gan_loss(self.mode, logits.float())
                + self.l1_weight * (fake.float() - target).abs().mean()
            )
        loss_g.backward()
        self.opt_g.step()
        return {"d_loss": loss_d.detach(), "g_loss": loss_g.detach()}


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run(
    arch: dict[str, Any],
    *,
    variant: str,
    batch: int,
    image_size: int | tuple[int, int],
    steps: int,
    warmup: int = 1,
    device: str = "cpu",
    flush_denormal: bool = True,
) -> dict[str, Any]:
    """Times `steps` training steps after `warmup` (compilation happens in the warmup)."""
    torch.set_flush_denormal(flush_denormal)  # a no-op (returns False) where unsupported
    model = Pix2Pix(arch, variant, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    cin = arch["generator"]["in_channels"]
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    shape = (batch, cin, h, w)
    condition = model.prepare((torch.rand(shape, generator=gen) * 2 - 1).to(device))
    target_shape = (batch, arch["generator"]["out_channels"], h, w)
    target = model.prepare((torch.rand(target_shape, generator=gen) * 2 - 1).to(device))
    start = time.perf_counter()
    for _ in range(warmup):
        losses = model.step(condition, target)
    _sync(device)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        losses = model.step(condition, target)
    _sync(device)
    step_s = (time.perf_counter() - start) / steps
    return {
        "variant": variant,
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "flush_denormal": flush_denormal,
        "batch_size": batch,
        "input_shape_nchw": list(shape),
        "warmup_s": round(first_s, 3),
        "step_s": step_s,
        "images_per_s": batch / step_s,
        "d_loss": float(losses["d_loss"]),
        "g_loss": float(losses["g_loss"]),
    }


def run_safely(arch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """`run`, with a failure (e.g. torch.compile lacking a compiler) as {"failed": reason}."""
    try:
        return run(arch, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported per variant, the others still run
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        return {"variant": kwargs["variant"], "failed": f"{type(e).__name__}: {reason}"}


def arch_from_config(config: Any) -> dict[str, Any]:
    """jaxcolor training config -> the networks and loss settings of `Pix2Pix`."""
    from jaxcolor.data.hints import condition_channels

    cin = condition_channels(config)
    g = dict(config.model.generator, in_channels=cin)
    d = dict(config.model.discriminator, in_channels=cin + g["out_channels"])
    return {
        "generator": registry.torch_kwargs(GENERATOR, g),
        "discriminator": registry.torch_kwargs(DISCRIMINATOR, d),
        "gan_mode": config.loss.gan_mode,
        "l1_weight": config.loss.recon_weight,
        "lr": config.optimizer.learning_rate,
        "b1": config.optimizer.b1,
        "b2": config.optimizer.b2,
        "seed": config.seed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--in_channels", type=int, default=4, help="sketch + hints (blur: 1 + 3)")
    p.add_argument("--num_downs", type=int, default=8)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--keep_denormals", action="store_true", help="no set_flush_denormal(True)")
    args = p.parse_args()
    arch = {
        "generator": dict(
            in_channels=args.in_channels, out_channels=3, num_downs=args.num_downs, ngf=args.ngf
        ),
        "discriminator": dict(in_channels=args.in_channels + 3, ndf=args.ndf, n_layers=3),
        "gan_mode": "vanilla",
        "l1_weight": 100.0,
        "lr": 2e-4,
        "b1": 0.5,
        "b2": 0.999,
    }
    for variant in args.variants.split(","):
        result = run_safely(
            arch,
            variant=variant,
            batch=args.batch,
            image_size=args.image_size,
            steps=args.steps,
            warmup=args.warmup,
            device=args.device,
            flush_denormal=not args.keep_denormals,
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

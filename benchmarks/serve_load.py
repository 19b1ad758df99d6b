"""Load test of python -m jaxcolor.serve on 127.0.0.1 (imports no JAX).

    python benchmarks/serve_load.py [--model EXPORT_DIR] [--requests 200] [--clients 16]
        [--side 128] [--max_batch 8] [--max_wait_ms 10] [--rss_rounds 20]
        [--parts load,overhead,rss] [--json PATH]

Without --model it writes an export of configs/tiny.py's generator (the README's tiny run:
64 px, 6 downsamplings, width 16, blur hints), freshly initialised by PyTorch: the same network,
so the same cost, as the trained one. It then measures:

1. `--requests` colorize requests (a --side x --side sketch + hints each) from `--clients`
   concurrent clients, against a server with batching off (--max_batch 1 --max_wait_ms 0) and
   on (--max_batch/--max_wait_ms): p50/p99 latency, images/s, errors, mean batch size;
2. the overhead of the server against calling the model directly for one image (sequential,
   medians of 50 interleaved calls): the PyTorch forward alone, and decode + prepare +
   forward + PNG encode;
3. the server's peak RSS while it refuses repeated oversize uploads (with and without a
   Content-Length) and reads bodies just under --max_body_mb that are not images.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib.util
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import httpx
import numpy as np
import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxcolor import inference  # noqa: E402
from jaxcolor.data.sources import SyntheticCartoonSource  # noqa: E402
from jaxcolor.export import torch_models  # noqa: E402


def _tiny_export(out: pathlib.Path) -> pathlib.Path:
    spec = importlib.util.spec_from_file_location("tiny_config", REPO / "configs" / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch_models.write_initialised(module.get_config().to_dict(), out)
    return out


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: pathlib.Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jaxcolor.serve", "--model", str(model),
             "--port", str(self.port), "--log_level", "warning", *args],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not get ready")

    def metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


def _inputs(n: int, side: int) -> list[dict[str, bytes]]:
    source = SyntheticCartoonSource(n, (side, side), seed=3)
    return [{"sketch": _png(source[i]), "hints": _png(source[i])} for i in range(n)]


async def _load(url: str, inputs, requests: int, clients: int) -> dict:
    latencies, errors = [], 0
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            try:
                r = await http.post(url + "/v1/colorize", files=inputs[i % len(inputs)])
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        wall = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": requests,
        "clients": clients,
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        "img_per_s": round(requests / wall, 1),
        "errors": errors,
    }


def _load_test(model, args, inputs) -> list[dict]:
    rows = []
    for name, flags in (
        ("off", ["--max_batch", "1", "--max_wait_ms", "0"]),
        ("on", ["--max_batch", str(args.max_batch), "--max_wait_ms", str(args.max_wait_ms)]),
    ):
        server = Server(model, *flags)
        try:
            asyncio.run(_load(server.url, inputs, 2 * args.clients, args.clients))  # warm-up
            calls0, images0 = (
                server.metric("jaxcolor_batch_size_count"),
                server.metric("jaxcolor_batch_size_sum"),
            )
            row = asyncio.run(_load(server.url, inputs, args.requests, args.clients))
            calls = server.metric("jaxcolor_batch_size_count") - calls0
            images = server.metric("jaxcolor_batch_size_sum") - images0
            row = {"batching": name, **row, "mean_batch": round(images / max(calls, 1), 2)}
        finally:
            row["exit_code"] = server.stop()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _overhead(model_dir, inputs, repeats: int = 50) -> dict:
    """Direct calls and server requests interleaved (A, B, A, B...), so both see the same load
    on a shared machine; the direct calls run on a worker thread, as the server's do."""
    model = inference.load(model_dir, "cpu")
    sketch_bytes, hints_bytes = inputs[0]["sketch"], inputs[0]["hints"]

    def prepare():
        image = inference.decode_image(sketch_bytes, "sketch")
        hints = inference.decode_image(hints_bytes, "hints")
        return inference.prepare_inputs(
            model, image, hint_image=hints, clicks=None, size=None, point_size=3,
            sketch_name="sketch", hints_name="hints",
        )  # fmt: skip

    sketch_u8, hint_u8 = prepare()
    server = Server(model_dir, "--max_batch", "1", "--max_wait_ms", "0")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    calls = {
        "forward_ms": lambda: pool.submit(model, sketch_u8, hint_u8).result(),
        "decode_prepare_forward_png_ms": lambda: pool.submit(
            lambda: _png(model(*prepare()))
        ).result(),
    }
    times: dict[str, list[float]] = {name: [] for name in [*calls, "server_ms"]}
    try:
        with httpx.Client(timeout=60) as http:
            calls["server_ms"] = lambda: http.post(server.url + "/v1/colorize", files=inputs[0])
            for i in range(10 + repeats):  # 10 warm-up rounds: oneDNN caches its kernels
                for name, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    if i >= 10:
                        times[name].append(time.perf_counter() - start)
    finally:
        server.stop()
        pool.shutdown()
    out = {name: round(statistics.median(t) * 1000, 2) for name, t in times.items()}
    out["server_overhead_ms"] = round(out["server_ms"] - out["decode_prepare_forward_png_ms"], 2)
    return out


def _rss(model_dir, repeats: int, body_mb: int = 8) -> dict:
    server = Server(model_dir, "--max_body_mb", str(body_mb))
    proc = psutil.Process(server.process.pid)
    peak, stop = [proc.memory_info().rss], threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(proc.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    statuses: dict[str, list[int]] = {"content_length": [], "chunked": [], "under_limit": []}
    rounds: list[int] = []  # peak RSS so far after each round: flat when memory is bounded
    big = b"\0" * (4 * body_mb * 2**20)
    head = b'--b\r\nContent-Disposition: form-data; name="sketch"; filename="s"\r\n\r\n'
    kind = {"content-type": "multipart/form-data; boundary=b"}
    try:
        with httpx.Client(timeout=60) as http:
            for _ in range(repeats):
                for key, body in (("content_length", head + big), ("chunked", None)):
                    content = body if body is not None else iter([head, big])
                    try:
                        r = http.post(server.url + "/v1/colorize", content=content, headers=kind)
                        statuses[key].append(r.status_code)
                    except httpx.HTTPError as e:  # the server may close while we still send
                        statuses[key].append(type(e).__name__)
                under = b"\1" * (body_mb * 2**20 - 4096)
                r = http.post(server.url + "/v1/colorize", files={"sketch": under})
                statuses["under_limit"].append(r.status_code)
                rounds.append(max(peak))
            healthy = http.get(server.url + "/healthz").status_code
    finally:
        stop.set()
        watcher.join()
        server.stop()
    mb = 2**20
    return {
        "uploads": {k: sorted({str(s) for s in v}) for k, v in statuses.items()},
        "oversize_mb_each": 4 * body_mb,
        "rss_start_mb": round(peak[0] / mb, 1),
        "rss_peak_mb": round(max(peak) / mb, 1),
        "rss_peak_after_rounds_mb": {
            n: round(rounds[n - 1] / mb, 1) for n in (1, 5, 10, 20, 40, 80) if n <= len(rounds)
        },
        "healthz_after": healthy,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="export directory (default: an initialised configs/tiny.py)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--side", type=int, default=128, help="sketch side in pixels (default 128)")
    p.add_argument("--max_batch", type=int, default=8)
    p.add_argument("--max_wait_ms", type=float, default=10)
    p.add_argument("--rss_rounds", type=int, default=20, help="oversize upload rounds (20)")
    p.add_argument(
        "--parts", default="load,overhead,rss", help="which measurements (default: all three)"
    )
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = pathlib.Path(args.model) if args.model else _tiny_export(pathlib.Path(tmp) / "m")
        inputs = _inputs(16, args.side)
        parts = args.parts.split(",")
        results = {
            "model": str(args.model or "configs/tiny.py generator, initialised"),
            "side": args.side,
            "cpu_count": os.cpu_count(),
        }
        if "load" in parts:
            results["load"] = _load_test(model, args, inputs)
        if "overhead" in parts:
            results["overhead"] = _overhead(model, inputs)
        if "rss" in parts:
            results["rss"] = _rss(model, args.rss_rounds)
    jax_loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "flax", "orbax"))
    results["jax_modules_imported"] = jax_loaded
    out = json.dumps(results, indent=2)
    print(out)
    if args.json:
        pathlib.Path(args.json).write_text(out + "\n")


if __name__ == "__main__":
    main()

"""`python -m jaxcolor.serve --model EXPORT_DIR [--host 127.0.0.1] [--port 8000] ...`

Serves an export of python -m jaxcolor.export over HTTP (PyTorch, no JAX): the colorize API, the
hint-painting page at /, health, info and Prometheus metrics. SIGTERM (or Ctrl-C) stops
accepting connections, finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

PROG = "python -m jaxcolor.serve"


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from jaxcolor.serve.app import Limits

    d = Limits()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Serve an exported jaxcolor generator: HTTP API + hint-painting page.",
    )
    p.add_argument("--model", required=True, help="export directory (config.json + weights)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--max_batch",
        type=_positive(int),
        default=d.max_batch,
        help=f"images per forward pass (1 = no batching; default {d.max_batch})",
    )
    p.add_argument(
        "--max_wait_ms",
        type=_non_negative,
        default=d.max_wait_ms,
        help=f"how long a request waits for batch mates (default {d.max_wait_ms:g})",
    )
    p.add_argument(
        "--max_queue",
        type=_positive(int),
        default=d.max_queue,
        help=f"requests waiting for the model before 503 (default {d.max_queue})",
    )
    p.add_argument(
        "--max_pixels",
        type=_positive(int),
        default=d.max_pixels,
        help=f"largest image (from its header) and working size, in pixels (default "
        f"{d.max_pixels})",
    )
    p.add_argument(
        "--max_body_mb",
        type=_positive(float),
        default=d.max_body_mb,
        help=f"largest request body in MB (default {d.max_body_mb:g})",
    )
    p.add_argument(
        "--timeout_s",
        type=_positive(float),
        default=d.timeout_s,
        help=f"a colorize request waiting longer gets 504 (default {d.timeout_s:g})",
    )
    p.add_argument("--log_level", default="info", help="uvicorn log level (default info)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    try:
        import uvicorn

        from jaxcolor.serve.app import Limits, create_app
    except ModuleNotFoundError as e:
        sys.exit(f"{PROG}: error: needs {e.name}: pip install 'jaxcolor[serve]'")
    args = parse_args(argv)
    from jaxcolor import inference
    from jaxcolor.core.errors import JaxcolorError

    limits = Limits(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_pixels=args.max_pixels,
        max_body_mb=args.max_body_mb,
        timeout_s=args.timeout_s,
    )
    try:
        model = inference.load(args.model, args.device)
    except JaxcolorError as e:
        sys.exit(f"{PROG}: error: {e}")
    try:  # bound here: a taken port is a one-line error, and --port 0 reports its port
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    port = sock.getsockname()[1]
    app = create_app(model, limits)
    print(
        f"{PROG}: {args.model} ({model.config['generator']['name']}, hints={model.hints}) "
        f"on {model.device}; page at http://{args.host}:{port}/",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(limits.timeout_s) + 5,
        limit_concurrency=limits.max_queue * 4,
    )
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler it found; a
    # no-op one makes a drained shutdown exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

"""python -m jaxcolor.serve: endpoints, micro-batching, every bad-input kind, fuzzing, SIGTERM.

One real server process (tests/serving.py) on a tiny freshly initialised export serves the
module; the queue-full and timeout cases run the same app in this process.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import signal
import time

import httpx
import numpy as np
import pytest
from bad_images import png_claiming
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from serving import Server, png, read_png, tiny_export

from jaxcolor import inference
from jaxcolor.data.sources import SyntheticCartoonSource

MAX_PIXELS = 40_000
MAX_BODY_MB = 1


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("serve") / "export")


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    s = Server(
        model_dir,
        tmp_path_factory.mktemp("serve_logs"),
        "--max_batch",
        "4",
        "--max_wait_ms",
        "150",
        "--max_pixels",
        str(MAX_PIXELS),
        "--max_body_mb",
        str(MAX_BODY_MB),
    )
    yield s
    s.stop()


def _sketch(seed: int, hw=(32, 48)) -> np.ndarray:
    return SyntheticCartoonSource(1, hw, seed=seed)[0]


def _drawing(hw=(32, 48)) -> np.ndarray:
    drawing = np.full((*hw, 3), 255, np.uint8)
    drawing[3:6, 4:7] = (200, 30, 40)
    drawing[20:24, 30:40] = (20, 90, 240)
    return drawing


def _post(server, files=None, data=None, params=None, **kw):
    return httpx.post(
        server.url + "/v1/colorize", files=files, data=data, params=params, timeout=30, **kw
    )


def _good(server, seed=0):
    r = _post(server, files={"sketch": png(_sketch(seed)), "hints": png(_drawing())})
    assert r.status_code == 200, r.text
    return read_png(r.content)


def test_endpoints(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(server.url + "/readyz").json() == {"ready": True}
    info = httpx.get(server.url + "/v1/info").json()
    assert info["hints"] == "points" and info["channels"] == 5 and info["point_hints"]
    assert info["hint_map"] is False  # a points model's hints are its drawing, not a map
    assert info["image_size"] == [32, 32] and info["size_multiple"] == 32
    assert info["reference"] is False and info["version"] and info["sketch_method"] == "xdog"
    assert info["limits"]["max_batch"] == 4 and info["limits"]["max_pixels"] == MAX_PIXELS
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/app.css"):
        text = httpx.get(server.url + asset).text
        assert (
            asset.split("/")[-1] in page.text and "http://" not in text and "https://" not in text
        )
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "sketch" in str(schema["paths"]["/v1/colorize"]["post"]["requestBody"])
    line_art = httpx.post(server.url + "/v1/sketch", files={"image": png(_sketch(1))})
    assert line_art.status_code == 200 and read_png(line_art.content).shape == (32, 48, 3)
    _good(server)
    # /v1/hints: what the model receives; points hints are RGBA, the mask as alpha.
    r = httpx.post(
        server.url + "/v1/hints", files={"sketch": png(_sketch(1)), "hints": png(_drawing())}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    hints = read_png(r.content, "RGBA")
    assert hints.shape == (32, 48, 4)
    painted = (_drawing() < 255).any(-1)
    np.testing.assert_array_equal(hints[..., 3] == 255, painted)
    np.testing.assert_array_equal(hints[painted][:, :3], _drawing()[painted])
    metrics = httpx.get(server.url + "/metrics").text
    for name in (
        'jaxcolor_requests_total{path="/v1/colorize",status="200"}',
        "jaxcolor_request_seconds_bucket",
        "jaxcolor_queue_seconds_count",
        "jaxcolor_batch_size_bucket",
        "jaxcolor_in_flight",
    ):
        assert name in metrics


def test_outputs_are_colorizes_own(server, model_dir, tmp_path):
    """PNG and JSON answers, hint images and both hint-point forms: the bytes colorize writes."""
    sketch, drawing = tmp_path / "s.png", tmp_path / "d.png"
    sketch.write_bytes(png(_sketch(2)))
    drawing.write_bytes(png(_drawing()))
    model = inference.load(model_dir, "cpu")

    def cli(**kw):
        (out,) = inference.colorize_files(model, str(sketch), str(tmp_path / "o.png"), **kw)
        return read_png(out.read_bytes())

    r = _post(server, files={"sketch": sketch.read_bytes(), "hints": drawing.read_bytes()})
    np.testing.assert_array_equal(read_png(r.content), cli(hints=str(drawing)))
    r = _post(
        server,
        files={"sketch": sketch.read_bytes(), "hints": drawing.read_bytes()},
        data={"size": "64"},
        params={"format": "json"},
    )
    body = r.json()
    assert body["inputs"]["working_hw"] == [64, 96] and body["inputs"]["hints_from"] == "hints"
    np.testing.assert_array_equal(
        read_png(base64.b64decode(body["png_base64"])), cli(hints=str(drawing), size=64)
    )
    points = "5,4,#c81e28;40,20,#1e5af0"
    expected = cli(hint_points=points)
    as_json = '[{"x": 5, "y": 4, "color": "#c81e28"}, [40, 20, "#1e5af0"]]'
    for text in (points, as_json):
        r = _post(server, files={"sketch": sketch.read_bytes()}, data={"hint_points": text})
        np.testing.assert_array_equal(read_png(r.content), expected)


def test_batching_batches_and_matches_one_by_one(server):
    sketches = [png(_sketch(10 + i)) for i in range(8)]
    hints = png(_drawing())

    def one(i):
        r = _post(server, files={"sketch": sketches[i], "hints": hints})
        assert r.status_code == 200, r.text
        return read_png(r.content)

    calls, images = (
        server.metric("jaxcolor_batch_size_count"),
        server.metric("jaxcolor_batch_size_sum"),
    )
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(one, range(8)))
    forward_calls = server.metric("jaxcolor_batch_size_count") - calls
    assert server.metric("jaxcolor_batch_size_sum") - images == 8
    assert forward_calls <= 4, f"8 concurrent requests took {forward_calls} forward passes"
    alone = [one(i) for i in range(8)]  # one at a time: each its own forward pass
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a, b)


GOOD = png(_sketch(0))
# kind -> (request, status, words of the message)
BAD_INPUTS = {
    "not an image": (dict(files={"sketch": b"hello, not an image"}), 400, "not an image"),
    "truncated file": (dict(files={"sketch": GOOD[: len(GOOD) // 2]}), 400, "truncated"),
    "zero bytes": (dict(files={"sketch": b""}), 400, "empty file (0 bytes)"),
    "unknown field": (dict(files={"sketch": GOOD, "hint": GOOD}), 422, "Unknown field 'hint'"),
    "missing sketch": (dict(files={"hints": GOOD}), 422, "Field sketch is missing"),
    "sketch as text": (
        dict(files={"hints": GOOD}, data={"sketch": "abc"}),
        422,
        "Field sketch must be a file upload",
    ),
    "hints of another size": (
        dict(files={"sketch": GOOD, "hints": png(_drawing((40, 40)))}),
        422,
        "Field hints is 40x40 but the sketch is 48x32; they must be the same size",
    ),
    "malformed hint points": (
        dict(files={"sketch": GOOD}, data={"hint_points": "1,2,red"}),
        422,
        "field hint_points entry '1,2,red' is not of the form x,y,#rrggbb",
    ),
    "hint point outside": (
        dict(files={"sketch": GOOD}, data={"hint_points": "48,3,#000000"}),
        422,
        "field hint_points 48,3 is outside the sketch (48x32)",
    ),
    "size not a number": (
        dict(files={"sketch": GOOD}, data={"size": "big"}),
        422,
        "Field size must be a whole number",
    ),
    "size over the pixel limit": (
        dict(files={"sketch": GOOD}, data={"size": "1000"}),
        413,
        "makes the working image 1500x1000 px",
    ),
    "pixel bomb": (
        dict(files={"sketch": png_claiming(1000, 1000)}),
        413,
        "1000x1000 px (1,000,000 pixels) is over the limit of 40,000",
    ),
    "pixel bomb over PIL's limit": (
        dict(files={"sketch": png_claiming(100_000, 100_000)}),
        413,
        "too large to decode safely",
    ),
    "oversize body": (
        dict(files={"sketch": b"\0" * (MAX_BODY_MB * 2**20 + 1)}),
        413,
        "over the server's limit of 1 MB (--max_body_mb)",
    ),
    "not multipart": (dict(json={"sketch": "x"}), 400, "Send multipart/form-data"),
    "bad format": (dict(files={"sketch": GOOD}, params={"format": "gif"}), 422, "use format=png"),
}


@pytest.mark.parametrize(
    "path, kind",
    [("/v1/colorize", kind) for kind in BAD_INPUTS]
    + [("/v1/hints", kind) for kind in BAD_INPUTS if kind != "bad format"],  # PNG only
)
def test_bad_input_gets_its_status_and_the_server_keeps_serving(server, path, kind):
    request, status, words = BAD_INPUTS[kind]
    r = httpx.post(server.url + path, timeout=30, **request)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    _good(server)


def test_oversize_body_without_content_length_is_cut_off(server):
    def chunks():  # a valid multipart start, then a file that does not end
        yield b'--b\r\nContent-Disposition: form-data; name="sketch"; filename="s.png"\r\n\r\n'
        for _ in range(4 * MAX_BODY_MB):
            yield b"\0" * 2**19

    r = httpx.post(
        server.url + "/v1/colorize",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert r.status_code == 413 and "--max_body_mb" in r.json()["detail"]
    _good(server)


_FIELD = st.sampled_from(["sketch", "hints", "hint_points", "reference", "size", "x"])


@st.composite
def _uploads(draw):
    files, data = {}, {}
    for name in draw(st.lists(_FIELD, max_size=4, unique=True)):
        if draw(st.booleans()):
            blob = draw(
                st.one_of(
                    st.binary(max_size=300),
                    st.builds(lambda n: GOOD[:n], st.integers(0, len(GOOD))),
                    st.builds(
                        lambda i, b: GOOD[:i] + bytes([b]) + GOOD[i + 1 :],
                        st.integers(0, len(GOOD) - 1),
                        st.integers(0, 255),
                    ),
                )
            )
            files[name] = blob
        else:
            data[name] = draw(st.text(max_size=40))
    return files, data


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(_uploads())
def test_fuzzed_uploads_never_get_a_5xx(server, upload):
    files, data = upload
    r = _post(server, files=files or None, data=data or None)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["detail"]


def test_full_queue_is_503_and_slow_requests_504(model_dir):
    from jaxcolor.serve.app import Limits, create_app

    model = inference.load(model_dir, "cpu")

    async def burst(limits: Limits, n: int, size: str) -> list[httpx.Response]:
        app = create_app(model, limits)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                files = {"sketch": png(_sketch(0)), "hints": png(_drawing())}
                return await asyncio.gather(
                    *[
                        client.post("/v1/colorize", files=files, data={"size": size})
                        for _ in range(n)
                    ]
                )

    statuses = [
        r.status_code
        for r in asyncio.run(burst(Limits(max_batch=1, max_queue=1, max_wait_ms=0), 6, "256"))
    ]
    assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}, statuses
    (timed_out,) = asyncio.run(burst(Limits(timeout_s=1e-4), 1, "32"))
    assert timed_out.status_code == 504 and "limit" in timed_out.json()["detail"]


@pytest.mark.parametrize("config, hints", [("reference", "none"), ("tiny", "palette")])
def test_reference_and_palette_models(tmp_path, config, hints):
    """The image a model takes besides the sketch: `reference` or a palette `hints` image of any
    size; the answers are colorize's."""
    from jaxcolor.serve.app import create_app

    model_dir = tiny_export(tmp_path / "export", hints=hints, config=config)
    model = inference.load(model_dir, "cpu")
    field = "reference" if config == "reference" else "hints"
    sketch, other = tmp_path / "s.png", tmp_path / "r.png"
    sketch.write_bytes(png(_sketch(3)))
    other.write_bytes(png(_sketch(4, (40, 56))))
    (out,) = inference.colorize_files(
        model, str(sketch), str(tmp_path / "o.png"), **{field: str(other)}
    )

    async def run():
        app = create_app(model)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                info = (await client.get("/v1/info")).json()
                files = {"sketch": sketch.read_bytes(), field: other.read_bytes()}
                good = await client.post("/v1/colorize", files=files)
                missing = await client.post("/v1/colorize", files={"sketch": files["sketch"]})
                hint_view = await client.post("/v1/hints", files=files)
                return info, good, missing, hint_view

    info, good, missing, hint_view = asyncio.run(run())
    assert info["reference"] is (config == "reference") and info["hints"] == hints
    np.testing.assert_array_equal(read_png(good.content), read_png(out.read_bytes()))
    assert missing.status_code == 422
    assert f"pass field {field} IMAGE" in missing.json()["detail"]
    assert hint_view.status_code == 422 and "are not an image" in hint_view.json()["detail"]


def _strokes(hw=(32, 48)) -> np.ndarray:
    """Three short strokes of different colours on white paper."""
    drawing = np.full((*hw, 3), 255, np.uint8)
    drawing[4:6, 4:14] = (224, 60, 49)
    drawing[22:24, 32:44] = (40, 170, 60)
    drawing[24:26, 6:14] = (30, 90, 240)
    return drawing


def test_a_blur_model_gets_the_colour_map_of_sparse_strokes(tmp_path, monkeypatch):
    """colorize, POST /v1/colorize and POST /v1/hints all feed a blur model the dense colour map
    of the strokes (hints.blur_hints_from_drawing), not a blur of mostly white paper; a drawing
    without paint is a clear 4xx / one-line error."""
    from jaxcolor import colorize as colorize_cli
    from jaxcolor.data import hints as hints_lib
    from jaxcolor.serve.app import create_app

    model_dir = tiny_export(tmp_path / "export", hints="blur")
    model = inference.load(model_dir, "cpu")
    drawing = _strokes()
    color_map = hints_lib.blur_hints_from_drawing(drawing)
    paper = np.full_like(drawing, 255)
    transparent = np.asarray(Image.new("RGBA", (48, 32), (0, 0, 0, 0)))
    files = {name: tmp_path / f"{name}.png" for name in ("sketch", "drawing", "paper", "clear")}
    for name, image in zip(files, (_sketch(7), drawing, paper, transparent), strict=True):
        files[name].write_bytes(png(image))

    fed = []
    call = inference.Colorizer.__call__
    monkeypatch.setattr(
        inference.Colorizer,
        "__call__",
        lambda self, s, h, r=None: fed.append(h) or call(self, s, h, r),
    )
    (out,) = inference.colorize_files(
        model, str(files["sketch"]), str(tmp_path / "o.png"), hints=str(files["drawing"])
    )
    np.testing.assert_array_equal(fed[0], color_map)
    sketch_u8 = inference.to_sketch(read_png(files["sketch"].read_bytes()))
    assert not np.array_equal(
        model(sketch_u8, color_map), model(sketch_u8, hints_lib.blur_hints(drawing))
    ), "the model's output must depend on the map, or this test shows nothing"

    async def run():
        app = create_app(model)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                sketch = files["sketch"].read_bytes()
                answers = [(await client.get("/v1/info")).json()]
                for path in ("/v1/hints", "/v1/colorize"):
                    for hints in ("drawing", "paper", "clear"):
                        form = {"sketch": sketch, "hints": files[hints].read_bytes()}
                        answers.append(await client.post(path, files=form))
                return answers

    info, hints, paper_hints, clear_hints, colored, paper_colored, clear_colored = asyncio.run(
        run()
    )
    assert info["hint_map"] is True and "dense colour map" in info["hints_image"]
    np.testing.assert_array_equal(read_png(hints.content), color_map)
    np.testing.assert_array_equal(read_png(colored.content), read_png(out.read_bytes()))
    for refused in (paper_hints, clear_hints, paper_colored, clear_colored):
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith("Field hints has no paint")
        assert "paint at least one colour" in refused.json()["detail"]
    args = dict(model=model_dir, sketch=files["sketch"], hints=files["clear"], out=tmp_path / "o")
    with pytest.raises(SystemExit) as exit_:
        colorize_cli.main([f"--{name}={value}" for name, value in args.items()])
    assert "error: Hints image" in str(exit_.value) and "has no paint" in str(exit_.value)


def test_sigterm_finishes_in_flight_requests_and_exits_0(server):
    """Last in the module: stops the shared server."""
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(_good, server, i) for i in range(3)]
        deadline = time.monotonic() + 10
        while server.metric("jaxcolor_in_flight") < 4 and time.monotonic() < deadline:
            pass  # the 3 requests (and this /metrics one) are in flight, waiting for batch mates
        server.process.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert all(r.shape == (32, 48, 3) for r in results)
    assert server.process.wait(30) == 0, server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)
    assert server.jax_modules() == []  # the serving process imported no JAX, Flax, Orbax, Grain

"""The hint page of python -m jaxcolor.serve in real headless Chromium (Playwright).

Playwright's pip package drives Debian's chromium-headless-shell (`apt-get install -y
--no-install-recommends chromium-headless-shell`; .ci/run installs it), never a browser that
`playwright install` downloads. A real session: open a colour image, extract its line art,
paint two colours, undo one, colorize, check the result, download it, export and import the
hints, the eyedropper, live mode, a rejected upload; no request leaves the page's origin.

A blur model: three strokes painted on a sketch give a colour map (the page's "show colour map",
from POST /v1/hints) with each stroke's colour around it and no white wash. With
JAXCOLOR_BLUR_EXPORT=DIR (an export of a blur model trained on real images) and
JAXCOLOR_BLUR_SKETCH=PNG (a held-out sketch), the same session runs on them and the model's
output near each stroke must be closer to that stroke's colour than to the others' or to white
(run by hand; CI runs the synthetic session). JAXCOLOR_UPDATE_SCREENSHOT=1 then paints a face's
usual colours on the same sketch and saves the page as docs/serve.png (the README's picture of
the page: a model trained on real images, not an untrained one).
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil

import cv2
import httpx
import numpy as np
import pytest
from serving import REPO, Server, png, read_png, tiny_export

from jaxcolor.data import hints as hints_lib
from jaxcolor.data.sources import SyntheticCartoonSource

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = next(
    (
        p
        for p in (
            "/usr/lib/chromium/chromium-headless-shell",
            shutil.which("chromium-headless-shell"),
        )
        if p and os.path.exists(p)
    ),
    None,
)
# Keep the browser off the network: no component/safe-browsing/sync/metrics traffic.
OFFLINE_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-first-run",
    "--no-pings",
    "--metrics-recording-only",
    "--no-default-browser-check",
]
H, W = 64, 96


def _server(tmp_path_factory, **export):
    if CHROMIUM is None:
        pytest.skip(
            "chromium-headless-shell is not installed: apt-get install -y "
            "--no-install-recommends chromium-headless-shell (.ci/run does)"
        )
    folder = tmp_path_factory.mktemp("browser")
    return Server(tiny_export(folder / "export", **export), folder, "--max_wait_ms", "0")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = _server(tmp_path_factory)
    yield s
    s.stop()


def _foreign(requests: list[str], origin: str) -> list[str]:
    """Requests that left the page's origin (blob: URLs of the page's own images are local)."""
    return [u for u in requests if not u.startswith((origin + "/", f"blob:{origin}/"))]


def _pixels(page, canvas_id: str) -> np.ndarray:
    data = page.evaluate(
        """(id) => {
            const c = document.getElementById(id);
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
        }""",
        canvas_id,
    )
    box = page.evaluate(f"[{canvas_id!r}].map(i => document.getElementById(i))[0].height")
    return np.asarray(data, np.uint8).reshape(box, -1, 4)


def _hints_png(page) -> bytes:
    b64 = page.evaluate(
        """async () => {
            const blob = await window.jaxcolor.hintsBlob();
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let s = ''; for (const b of bytes) s += String.fromCharCode(b);
            return btoa(s);
        }"""
    )
    return base64.b64decode(b64)


def _at(page, canvas_id: str, x: int, y: int) -> tuple[float, float]:
    """The page position of pixel (x, y)'s centre of a canvas shown scaled."""
    left, top, width, height, w, h = page.evaluate(
        """(id) => {
            const c = document.getElementById(id), r = c.getBoundingClientRect();
            return [r.left + c.clientLeft, r.top + c.clientTop, c.clientWidth, c.clientHeight,
                    c.width, c.height];
        }""",
        canvas_id,
    )
    return left + (x + 0.5) * width / w, top + (y + 0.5) * height / h


def _drag(page, points, canvas_id="hint-canvas"):
    page.mouse.move(*_at(page, canvas_id, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_at(page, canvas_id, *p), steps=4)
    page.mouse.up()


def _wait_results(page, n: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.results || 0) >= {n}")


def test_a_painting_session_in_chromium(server, tmp_path):
    origin = server.url
    color = SyntheticCartoonSource(1, (H, W), seed=5)[0]
    (tmp_path / "colour.png").write_bytes(png(color))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
        context = browser.new_context(
            viewport={"width": 1000, "height": 640}, accept_downloads=True
        )
        requests = []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.goto(origin + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert "hints: points" in page.locator("#model-info").inner_text()

        # A colour image: the page offers the training sketch function.
        page.set_input_files("#sketch-file", str(tmp_path / "colour.png"))
        page.wait_for_selector("#extract:not([hidden])")
        page.click("#extract")
        page.wait_for_selector("#extract[hidden]", state="attached")
        sketch = _pixels(page, "sketch-canvas")
        assert sketch.shape == (H, W, 4)
        assert (sketch[..., 0] == sketch[..., 1]).all() and (sketch[..., 1] == sketch[..., 2]).all()

        page.click("#colorize")
        _wait_results(page, 1)
        plain = _pixels(page, "result-canvas")[..., :3].astype(int)

        # Two colours, then undo the second.
        page.locator("#color").fill("#e03c31")
        _drag(page, [(10, 10), (30, 14)])
        page.locator("#color").fill("#1e5af0")
        _drag(page, [(60, 45), (85, 50)])
        assert page.locator("#recent button").count() == 2
        page.click("#undo")
        hints = read_png(_hints_png(page), "RGBA")
        alpha = hints[..., 3]
        assert set(np.unique(alpha)) == {0, 255}, "hints must be hard-edged (alpha 0 or 255)"
        # Why the page writes pixels: the same stroke as a canvas path is anti-aliased.
        path_levels = page.evaluate(
            """() => {
                const c = document.createElement('canvas'); c.width = 96; c.height = 64;
                const g = c.getContext('2d'); g.lineWidth = 4; g.strokeStyle = '#e03c31';
                g.beginPath(); g.moveTo(10.5, 10.5); g.lineTo(30.5, 14.5); g.stroke();
                const a = new Set(); const d = g.getImageData(0, 0, 96, 64).data;
                for (let i = 3; i < d.length; i += 4) a.add(d[i]);
                return a.size;
            }"""
        )
        assert path_levels > 10, path_levels
        painted = alpha == 255
        assert {tuple(c) for c in hints[painted][:, :3]} == {(0xE0, 0x3C, 0x31)}
        ys, xs = np.nonzero(painted)
        assert 8 <= xs.min() and xs.max() <= 32 and 8 <= ys.min() and ys.max() <= 16

        page.click("#colorize")
        _wait_results(page, 2)
        result = _pixels(page, "result-canvas")[..., :3].astype(int)
        # The page sends what colorize would: the same sketch and hint layer give these pixels.
        sketch_png = png(np.ascontiguousarray(sketch[..., :3]))
        direct = httpx.post(
            origin + "/v1/colorize", files={"sketch": sketch_png, "hints": _hints_png(page)}
        )
        np.testing.assert_array_equal(result, read_png(direct.content))
        change = np.abs(result - plain).sum(-1)
        near = np.zeros_like(painted)
        near[max(ys.min() - 4, 0) : ys.max() + 5, max(xs.min() - 4, 0) : xs.max() + 5] = True
        assert change[painted].mean() > 0 and change[near].mean() > 2 * change[~near].mean()

        with page.expect_download() as download:
            page.click("#download")
        assert read_png(pathlib.Path(download.value.path()).read_bytes()).shape == (H, W, 3)
        np.testing.assert_array_equal(
            read_png(pathlib.Path(download.value.path()).read_bytes()), result
        )
        page.screenshot(path=str(tmp_path / "serve.png"))

        # Hints as JSON points: export, clear, import gives the same layer.
        with page.expect_download() as exported:
            page.click("#export-hints")
        points = json.loads(pathlib.Path(exported.value.path()).read_text())
        assert len(points) == painted.sum() and points[0]["color"] == "#e03c31"
        page.click("#clear")
        assert (read_png(_hints_png(page), "RGBA")[..., 3] == 0).all()
        page.set_input_files("#import-hints", exported.value.path())
        page.wait_for_function("window.jaxcolor.state.undo.length === 3")  # red, clear, import
        np.testing.assert_array_equal(read_png(_hints_png(page), "RGBA"), hints)

        # The eyedropper takes a colour from the result; live mode colorizes after a stroke.
        page.click("[data-tool='eyedropper']")
        page.mouse.click(*_at(page, "result-canvas", 48, 32))
        r, g, b = result[32, 48]
        assert page.locator("#color").input_value() == f"#{r:02x}{g:02x}{b:02x}"
        page.click("[data-tool='point']")
        page.check("#live")
        _drag(page, [(50, 30)])
        _wait_results(page, 3)

        # A rejected upload shows the server's message.
        page.set_input_files(
            "#sketch-file",
            files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}],
        )
        page.wait_for_function("document.getElementById('message').textContent.includes('400')")
        assert "not an image" in page.locator("#message").inner_text()
        browser.close()

    assert requests and not _foreign(requests, origin), _foreign(requests, origin)


def test_a_reference_model_asks_for_its_reference(tmp_path_factory, tmp_path):
    server = _server(tmp_path_factory, hints="none", config="reference")
    try:
        sketch = png(np.repeat(_sketch_u8(), 3, axis=-1))
        reference = png(SyntheticCartoonSource(1, (40, 56), seed=8)[0])
        (tmp_path / "s.png").write_bytes(sketch)
        (tmp_path / "r.png").write_bytes(reference)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
            page = browser.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator("#tools").is_hidden()  # data.hints=none: nothing to paint
            assert page.locator("#reference-word").inner_text() == "Reference"
            page.set_input_files("#sketch-file", str(tmp_path / "s.png"))
            page.wait_for_selector("#colorize:enabled")
            page.click("#colorize")
            page.wait_for_function("document.getElementById('message').textContent !== ''")
            assert "needs a reference image" in page.locator("#message").inner_text()
            page.set_input_files("#reference-file", str(tmp_path / "r.png"))
            page.fill("#size", "64")
            page.click("#colorize")
            _wait_results(page, 1)
            result = _pixels(page, "result-canvas")[..., :3]
            browser.close()
        direct = httpx.post(
            server.url + "/v1/colorize",
            files={"sketch": sketch, "reference": reference},
            data={"size": "64"},
        )
        assert result.shape == (64, 96, 3)
        np.testing.assert_array_equal(result, read_png(direct.content))
        assert requests and not _foreign(requests, server.url), _foreign(requests, server.url)
    finally:
        server.stop()


def test_a_palette_model_asks_for_its_palette_image(tmp_path_factory, tmp_path):
    """The page learns from /v1/info (hint_input 'image', hint_label) that a palette model takes
    a colour image as its hints, not a painting; it never compares the method's name."""
    server = _server(tmp_path_factory, hints="palette", config="tiny")
    try:
        sketch = png(np.repeat(_sketch_u8(), 3, axis=-1))
        palette = png(SyntheticCartoonSource(1, (40, 56), seed=9)[0])
        (tmp_path / "s.png").write_bytes(sketch)
        (tmp_path / "p.png").write_bytes(palette)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator("#tools").is_hidden()  # an image, not a painting
            assert page.locator("#reference-word").inner_text() == "Palette image"
            page.set_input_files("#sketch-file", str(tmp_path / "s.png"))
            page.wait_for_selector("#colorize:enabled")
            page.click("#colorize")
            page.wait_for_function("document.getElementById('message').textContent !== ''")
            assert "needs a palette image" in page.locator("#message").inner_text()
            page.set_input_files("#reference-file", str(tmp_path / "p.png"))
            page.click("#colorize")
            _wait_results(page, 1)
            result = _pixels(page, "result-canvas")[..., :3]
            browser.close()
        direct = httpx.post(server.url + "/v1/colorize", files={"sketch": sketch, "hints": palette})
        assert direct.status_code == 200, direct.text
        np.testing.assert_array_equal(result, read_png(direct.content))
    finally:
        server.stop()


def _sketch_u8() -> np.ndarray:
    from jaxcolor.data.sketch import make_sketch

    return make_sketch("xdog", SyntheticCartoonSource(1, (32, 48), seed=6)[0])


# ---------------------------------------------------------------------------------------------
# blur models: strokes become the dense colour map training shows

BLUR_EXPORT = os.environ.get("JAXCOLOR_BLUR_EXPORT")
BLUR_SKETCH = os.environ.get("JAXCOLOR_BLUR_SKETCH")
# Three strokes of clearly different colours, (x, y) as shares of the sketch's width and height:
# upper left, lower right, lower left.
THREE_STROKES = (
    ((208, 40, 40), [(0.12, 0.18), (0.38, 0.24)]),
    ((40, 160, 60), [(0.62, 0.68), (0.88, 0.76)]),
    ((40, 70, 210), [(0.16, 0.78), (0.34, 0.86)]),
)


def _open_sketch(page, url: str, sketch: pathlib.Path) -> tuple[int, int]:
    """Opens the page at `url` with `sketch` loaded; -> the sketch's (height, width)."""
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#sketch-file", str(sketch))
    page.wait_for_selector("#colorize:enabled")
    return page.evaluate("[window.jaxcolor.state.height, window.jaxcolor.state.width]")


def _paint(page, strokes, h: int, w: int) -> None:
    """Paints each (rgb, [(x, y) as shares of the width and height]) stroke with the brush."""
    for rgb, points in strokes:
        page.locator("#color").fill("#{:02x}{:02x}{:02x}".format(*rgb))
        _drag(page, [(round(x * (w - 1)), round(y * (h - 1))) for x, y in points])


def _blur_session(url: str, sketch: pathlib.Path) -> dict:
    """Opens `sketch` on the page, colorizes without paint (refused), paints THREE_STROKES,
    shows the colour map and colorizes. Returns the help text, the sketch, map and result
    pixels, each stroke's colour and mask, and the hint layer's PNG as sent."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        h, w = _open_sketch(page, url, sketch)
        help_text = page.locator("#hint-help").inner_text()
        brush = max(4, round(min(h, w) / 24))  # a rough stroke at any sketch size
        page.evaluate(
            "(n) => { const b = document.getElementById('brush-size'); b.value = n; "
            "b.dispatchEvent(new Event('input')); }",
            brush,
        )
        page.check("#show-map")
        assert page.locator("#map-canvas").is_hidden()  # nothing painted: no map to show
        page.click("#colorize")  # nothing to spread: the server says what to do
        page.wait_for_function(
            "document.getElementById('message').textContent.includes('paint at least one')"
        )
        _paint(page, THREE_STROKES, h, w)
        page.wait_for_function(
            "!window.jaxcolor.state.mapBusy && !window.jaxcolor.state.mapAgain && "
            "Number(document.body.dataset.maps || 0) >= 1"
        )
        assert page.locator("#map-canvas").is_visible()
        hints_png = _hints_png(page)
        hints = read_png(hints_png, "RGBA")
        page.click("#colorize")
        _wait_results(page, 1)
        page.screenshot(path=str(sketch.with_name("blur-session.png")))
        session = {
            "help": help_text,
            "sketch": _pixels(page, "sketch-canvas")[..., :3],
            "hints_png": hints_png,
            "map": _pixels(page, "map-canvas")[..., :3],
            "result": _pixels(page, "result-canvas")[..., :3],
            "strokes": [
                (np.array(rgb), (hints[..., 3] == 255) & (hints[..., :3] == rgb).all(-1))
                for rgb, _ in THREE_STROKES
            ],
        }
        page.uncheck("#show-map")
        assert page.locator("#map-canvas").is_hidden()
        browser.close()
    return session


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """The pixels within `radius` of a mask."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _closest_strokes(colors: np.ndarray, strokes) -> list[int]:
    """For each colour (a row of `colors`), the index of the closest stroke colour, or
    len(strokes) where the white paper is closer (a washed-out result)."""
    palette = np.array([*(rgb for rgb, _ in strokes), (255, 255, 255)], np.float64)
    return [int(np.argmin(np.linalg.norm(palette - c, axis=-1))) for c in colors]


def test_three_strokes_on_a_blur_model_give_a_colour_map_of_their_colours(
    tmp_path_factory, tmp_path
):
    from jaxcolor.data.sketch import make_sketch

    server = _server(tmp_path_factory, hints="blur")
    try:
        sketch = make_sketch("xdog", SyntheticCartoonSource(1, (H, W), seed=6)[0])
        (tmp_path / "sketch.png").write_bytes(png(np.repeat(sketch, 3, axis=-1)))
        session = _blur_session(server.url, tmp_path / "sketch.png")
        # The page shows what the server feeds the model for these inputs.
        files = {"sketch": (tmp_path / "sketch.png").read_bytes(), "hints": session["hints_png"]}
        direct = httpx.post(server.url + "/v1/hints", files=files)
    finally:
        server.stop()
    np.testing.assert_array_equal(session["map"], read_png(direct.content))
    assert "spread into a dense colour map" in session["help"]
    color_map, strokes = session["map"].astype(int), session["strokes"]
    assert all(mask.sum() > 20 for _, mask in strokes)
    sigma = hints_lib.blur_sigma((H, W))
    for rgb, mask in strokes:  # each stroke's colour all around it
        assert np.abs(color_map[_near(mask, round(sigma / 2))] - rgb).max() <= 12
    means = np.array([color_map[_near(mask, round(2 * sigma))].mean(0) for _, mask in strokes])
    assert _closest_strokes(means, strokes) == [0, 1, 2]
    # No white wash: the paper takes the strokes' colours (a blur of the white paper would not).
    assert not (color_map > hints_lib.PAPER_LEVEL).all(-1).any()
    palette = np.array([rgb for rgb, _ in strokes])
    assert ((color_map >= palette.min(0)) & (color_map <= palette.max(0))).all()
    assert session["result"].shape == (H, W, 3)


@pytest.mark.skipif(
    not (BLUR_EXPORT and BLUR_SKETCH),
    reason="set JAXCOLOR_BLUR_EXPORT=DIR (a blur model trained on real images) and "
    "JAXCOLOR_BLUR_SKETCH=PNG (a held-out sketch) to run it",
)
def test_three_strokes_colour_a_real_sketch_near_them(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium-headless-shell is not installed")
    server = Server(pathlib.Path(BLUR_EXPORT), tmp_path, "--max_wait_ms", "0")
    try:
        shutil.copy(BLUR_SKETCH, tmp_path / "sketch.png")
        session = _blur_session(server.url, tmp_path / "sketch.png")
    finally:
        server.stop()
    result, strokes = session["result"].astype(np.float64), session["strokes"]
    light = session["sketch"].min(-1) > 160  # off the line art, which stays dark
    radius = max(2, round(hints_lib.blur_sigma(result.shape[:2]) / 2))
    means = np.array([result[_near(mask, radius) & light].mean(0) for _, mask in strokes])
    print(f"output near each stroke: {means.round().tolist()}; page: {tmp_path}/blur-session.png")
    assert _closest_strokes(means, strokes) == [0, 1, 2], means.round()
    if os.environ.get("JAXCOLOR_UPDATE_SCREENSHOT") == "1":
        server = Server(pathlib.Path(BLUR_EXPORT), tmp_path, "--max_wait_ms", "0")
        try:
            _screenshot_session(server.url, tmp_path / "sketch.png", REPO / "docs" / "serve.png")
        finally:
            server.stop()


# The README's picture: a face's usual colours, (x, y) as shares of a centred portrait sketch.
PORTRAIT_STROKES = (
    ((122, 74, 52), [(0.22, 0.10), (0.50, 0.06), (0.78, 0.10)]),  # hair
    ((122, 74, 52), [(0.12, 0.45), (0.10, 0.75)]),
    ((122, 74, 52), [(0.88, 0.45), (0.90, 0.75)]),
    ((250, 226, 208), [(0.40, 0.62), (0.60, 0.62)]),  # face
    ((70, 92, 140), [(0.25, 0.95), (0.75, 0.95)]),  # clothes
)


def _screenshot_session(url: str, sketch: pathlib.Path, path: pathlib.Path) -> None:
    """The page with `sketch`, PORTRAIT_STROKES painted (shown, not the colour map) and
    colorized, as a screenshot at `path`."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 660})
        _paint(page, PORTRAIT_STROKES, *_open_sketch(page, url, sketch))
        page.click("#colorize")
        _wait_results(page, 1)
        page.screenshot(path=str(path))
        browser.close()

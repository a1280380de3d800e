"""The HTTP API through FastAPI's test client: every status, limits, concurrency, no disk writes."""

import asyncio
import io
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import stop, strong_colour_model
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as photos
from skimage.color import rgb2lab

from colorkit import cli, metrics
from colorkit.data import decode
from colorkit.errors import ColorkitError
from colorkit.web import Limits, create_app, hosts

PHOTO = photos.astronaut()[:120, :90]  # 90 wide, 120 high


def encoded(pixels, image_format="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def decoded(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


@pytest.fixture(scope="module")
def hint_model():
    return strong_colour_model()


@pytest.fixture(scope="module")
def client(colour_run):
    with local_client(create_app(colour_run, Limits(max_upload_bytes=3_000_000, max_pixels=2_000_000))) as client:
        yield client


def local_client(app) -> TestClient:
    """A test client that calls the app by the name a local browser uses (the app answers no other)."""
    return TestClient(app, base_url="http://127.0.0.1:8000")


def post(client, content: bytes, name="photo.png", content_type="image/png", headers=None, **fields):
    return client.post("/api/colorize", files={"file": (name, content, content_type)}, data=fields, headers=headers)


# --- What the API says about itself ------------------------------------------------------------------


def test_health_models_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    described = client.get("/api/models").json()
    model = described["models"][0]
    assert model.pop("source").startswith("colour_run")
    assert model == {"name": "strided_cnn", "takes_hints": True, "takes_global_hints": False, "working_size": [64, 64]}
    assert described["limits"]["max_upload_bytes"] == 3_000_000
    operation = client.get("/openapi.json").json()["paths"]["/api/colorize"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) == {"file", "hints"}
    assert {"200", "400", "413", "422", "503"} <= set(operation["responses"])
    assert "image/png" in operation["responses"]["200"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_a_model_without_hint_inputs_says_so(hint_model):
    with local_client(create_app(strong_colour_model(hints=False))) as plain:
        assert plain.get("/api/models").json()["models"][0]["takes_hints"] is False
        reply = post(plain, encoded(PHOTO), hints='[{"x": 1, "y": 1, "rgb": [0, 0, 255]}]')
        assert reply.status_code == 422 and "takes no hints" in reply.json()["detail"]


# --- 200 ----------------------------------------------------------------------------------------------


def test_colorize_returns_a_png_of_the_same_size_same_l_and_colour(client):
    reply = post(client, encoded(PHOTO))
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    image = decoded(reply.content)
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (90, 120))
    result = np.asarray(image)
    assert np.abs(rgb2lab(result)[..., 0] - rgb2lab(PHOTO)[..., 0]).max() < 0.3
    assert metrics.colorfulness(result / 255.0) > 30


def test_the_content_decides_not_the_name_or_declared_type(client):
    jpeg = encoded(PHOTO, "JPEG", quality=95)
    reply = post(client, jpeg, name="notes.txt", content_type="text/plain")
    assert reply.status_code == 200 and decoded(reply.content).size == (90, 120)


def test_alpha_comes_back(client):
    alpha = np.tile(np.linspace(0, 255, 90).astype(np.uint8), (120, 1))[..., None]
    reply = post(client, encoded(np.concatenate([PHOTO, alpha], -1)))
    image = decoded(reply.content)
    assert reply.status_code == 200 and image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(image)[..., 3], alpha[..., 0])


def test_hints_are_accepted_in_the_images_coordinates(client):
    hints = json.dumps([{"x": 89, "y": 119, "rgb": [0, 0, 255], "size": 9}, {"x": 0, "y": 0, "ab": [-40, 20]}])
    reply = post(client, encoded(PHOTO), hints=hints)
    assert reply.status_code == 200 and decoded(reply.content).size == (90, 120)


# --- 400, 413, 422 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"%PDF-1.4 not an image at all", "not a readable image"),
        (b"", "not a readable image"),
        (encoded(PHOTO)[:2000], "truncated"),
    ],
)
def test_what_is_not_an_image_is_400_whatever_it_claims(client, content, message):
    reply = post(client, content, name="photo.png", content_type="image/png")
    assert reply.status_code == 400 and message in reply.json()["detail"]


def test_an_upload_above_the_limit_is_413(client):
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    content = encoded(noise)
    assert len(content) > 3_000_000
    reply = post(client, content)
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]


def test_an_image_above_the_pixel_limit_is_413_before_decoding(client):
    content = encoded(np.zeros((1500, 1500), np.uint8))  # 2.25 MP in a few kB
    assert len(content) < 100_000
    reply = post(client, content)
    assert reply.status_code == 413 and "1500x1500" in reply.json()["detail"]


@pytest.mark.parametrize(
    "hints, message",
    [
        ("[{", "not valid JSON"),
        ('[{"x": 90, "y": 0, "rgb": [0, 0, 255]}]', "outside the 90x120 image"),
        ('[{"x": 1, "y": 1, "rgb": [0, 0, 255], "size": 0}]', "size"),
        ('{"x": 1}', "JSON list"),
    ],
)
def test_malformed_hints_are_422_with_the_reason(client, hints, message):
    reply = post(client, encoded(PHOTO), hints=hints)
    assert reply.status_code == 422 and message in reply.json()["detail"]


def test_a_form_without_the_file_is_422(client):
    assert client.post("/api/colorize", data={"hints": "[]"}).status_code == 422
    assert client.post("/api/colorize", data={"file": "not a file"}).status_code == 422
    reply = client.post("/api/colorize", content=encoded(PHOTO), headers={"content-type": "image/png"})
    assert reply.status_code == 422 and "multipart/form-data" in reply.json()["detail"]


# --- 503, concurrency --------------------------------------------------------------------------------------


def test_a_full_pool_answers_503_at_once(hint_model):
    app = create_app(hint_model, Limits(workers=1, queue=0))
    started, release = threading.Event(), threading.Event()
    real = app.state.service.colorize_upload

    def slow(*args):
        started.set()
        release.wait(30)
        return real(*args)

    app.state.service.colorize_upload = slow
    with local_client(app) as client, ThreadPoolExecutor(1) as background:
        first = background.submit(post, client, encoded(PHOTO))
        assert started.wait(30)
        busy = post(client, encoded(PHOTO))
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        release.set()
        assert first.result(60).status_code == 200
        assert post(client, encoded(PHOTO)).status_code == 200  # the place was given back


def test_many_requests_at_once_are_all_answered_correctly_or_refused(hint_model):
    uploads = [encoded(photos.astronaut()[i * 20 : i * 20 + 64 + i, : 48 + 3 * i]) for i in range(6)]
    with local_client(create_app(hint_model, Limits(workers=2, queue=2))) as client:
        expected = [post(client, upload).content for upload in uploads]  # one at a time
        with ThreadPoolExecutor(24) as burst:
            replies = list(burst.map(lambda i: (i % 6, post(client, uploads[i % 6])), range(24)))
        assert client.app.state.pool.admitted == 0
    statuses = [reply.status_code for _, reply in replies]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 4
    for index, reply in replies:
        if reply.status_code == 200:
            assert reply.content == expected[index]  # no request saw another's pixels


def test_concurrent_requests_within_the_limits_all_succeed_with_the_serial_result(hint_model):
    upload = encoded(PHOTO)
    with local_client(create_app(hint_model, Limits(workers=2, queue=14))) as client:
        expected = post(client, upload).content
        with ThreadPoolExecutor(16) as burst:
            replies = list(burst.map(lambda _: post(client, upload), range(16)))
    assert [reply.status_code for reply in replies] == [200] * 16
    assert all(reply.content == expected for reply in replies)


# --- Nothing touches the disk; decoding from memory ----------------------------------------------------------

_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND


def _write_recorder():
    """``(watch, hook)``: an audit hook that lists files opened for writing while
    ``watch["on"]``. Audit hooks stay for the life of the process, so the hook
    holds its state in a closure and does nothing else when off (also while the
    interpreter shuts down and module globals are gone)."""
    watch = {"on": False, "writes": []}

    def hook(event, args, watch=watch, write_flags=_WRITE_FLAGS):
        if not watch["on"] or event != "open":
            return
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & write_flags):
            watch["writes"].append(path)

    return watch, hook


def test_nothing_a_request_sends_touches_the_file_system(client):
    watch, hook = _write_recorder()
    sys.addaudithook(hook)
    noise = np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    content = encoded(noise)
    assert 1_100_000 < len(content) < 3_000_000  # above the form parser's default 1 MB spool
    watch["on"] = True
    try:
        reply = post(client, content, hints='[{"x": 5, "y": 5, "rgb": [255, 0, 0]}]')
    finally:
        watch["on"] = False
    assert reply.status_code == 200 and decoded(reply.content).size == (700, 700)
    assert watch["writes"] == []


def test_bytes_decode_like_files(tmp_path):
    photo = photos.chelsea()[:30, :40]
    samples = {
        "rgba.png": Image.fromarray(np.concatenate([photo, np.full((30, 40, 1), 128, np.uint8)], -1)),
        "wide16.png": Image.fromarray(photo[..., 0].astype(np.uint16) * 257),
        "cmyk.jpg": Image.fromarray(photo).convert("CMYK"),
        "palette.gif": Image.fromarray(photo).convert("P"),
    }
    for name, image in samples.items():
        image.save(tmp_path / name)
        from_file = decode.load_stored(tmp_path / name)
        from_bytes = decode.load_stored_bytes((tmp_path / name).read_bytes())
        np.testing.assert_array_equal(from_file.pixels, from_bytes.pixels)
        np.testing.assert_array_equal(from_file.alpha, from_bytes.alpha)
    with pytest.raises(decode.ImageTooLarge, match="the upload is a decompression bomb"):
        decode.load_stored_bytes((tmp_path / "rgba.png").read_bytes(), max_pixels=100, name="the upload")


def test_the_default_pixel_limit_keeps_every_workers_image_within_the_memory_budget():
    from colorkit import colorize
    from colorkit.web import app

    for workers in (1, 2, 3, 8):
        limit = Limits(workers=workers).max_pixels
        assert workers * limit * colorize.BYTES_PER_PIXEL <= app.DEFAULT_IMAGE_MEMORY
        assert limit == decode.DEFAULT_MAX_PIXELS or workers * (limit + 1) * colorize.BYTES_PER_PIXEL > \
            app.DEFAULT_IMAGE_MEMORY  # the largest that fits, or the decoder's own limit
    assert Limits(workers=1).max_pixels == decode.DEFAULT_MAX_PIXELS
    assert Limits(workers=8).max_pixels < Limits(workers=2).max_pixels < decode.DEFAULT_MAX_PIXELS
    assert Limits(workers=8, max_pixels=1000).max_pixels == 1000
    with pytest.raises(ColorkitError, match="--workers must be a whole number of at least 1"):
        Limits(workers=0)


# --- The serve command ----------------------------------------------------------------------------------------


def test_serve_binds_localhost_unless_told_and_checks_its_limits(capsys):
    args = cli.build_parser().parse_args(["serve", "--run", "somewhere"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert cli.main(["serve", "--run", "somewhere", "--workers", "0"]) == 2
    assert "--workers must be a whole number of at least 1" in capsys.readouterr().err
    assert cli.main(["serve", "--run", "somewhere", "--max-upload-mb", "-1"]) == 2
    assert "--max-upload-mb must be a positive number" in capsys.readouterr().err
    assert cli.main(["serve", "--run", "nowhere"]) == 2
    assert "nowhere is not a .keras model file or a run folder" in capsys.readouterr().err


# --- Slow and silent uploads: bodies are read, with deadlines, before a worker place is taken -------------------


def _scope(host: bytes = b"127.0.0.1") -> dict:
    """The ASGI scope of ``POST /api/colorize`` with a multipart body."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/api/colorize", "raw_path": b"/api/colorize", "query_string": b"", "root_path": "",
            "headers": [(b"host", host), (b"content-type", b"multipart/form-data; boundary=x")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def asgi_post(app, receive) -> tuple[int, dict, dict]:
    """Call the app as a server would, the body coming from ``receive``: (status, headers, JSON reply)."""
    sent = []

    async def send(message):
        sent.append(message)

    await app(_scope(), receive, send)
    headers = {key.decode(): value.decode() for key, value in sent[0]["headers"]}
    return sent[0]["status"], headers, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def one_chunk(body: bytes):
    """A ``receive`` that delivers ``body`` in one message."""
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def test_a_silent_body_is_408_after_the_idle_timeout(hint_model):
    app = create_app(hint_model, Limits(idle_timeout=0.2, body_timeout=30))

    async def silent():
        await asyncio.sleep(60)  # the client says nothing (the test would end with 400 after a minute)
        return {"type": "http.request", "body": b"", "more_body": False}

    status, headers, reply = asyncio.run(asgi_post(app, silent))
    assert status == 408 and "no part of the upload arrived for 0.2 s" in reply["detail"]
    assert headers["connection"] == "close"


def test_a_trickling_body_is_408_at_the_body_deadline(hint_model):
    app = create_app(hint_model, Limits(idle_timeout=5, body_timeout=0.5))
    sent = 0

    async def trickle():  # a byte every 20 ms, 600 of them at most (12 s)
        nonlocal sent
        sent += 1
        await asyncio.sleep(0.02)
        return {"type": "http.request", "body": b"-", "more_body": sent < 600}

    status, _, reply = asyncio.run(asgi_post(app, trickle))
    assert status == 408 and "within 0.5 s" in reply["detail"] and sent < 600


def test_bodies_being_received_share_a_byte_budget(hint_model):
    limits = Limits(max_upload_bytes=400_000, workers=1, queue=0)
    app = create_app(hint_model, limits)
    first_part = b"-" * (limits.max_body_bytes - 100_000)

    async def scenario():
        stalled, release = asyncio.Event(), asyncio.Event()
        calls = 0

        async def send_then_stall():
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": first_part, "more_body": True}
            stalled.set()
            await release.wait()
            return {"type": "http.disconnect"}

        first = asyncio.create_task(asgi_post(app, send_then_stall))
        await stalled.wait()  # the first body's bytes are held, waiting for more
        during = await asgi_post(app, one_chunk(b"-" * 200_000))
        release.set()
        await first
        after = await asgi_post(app, one_chunk(b"-" * 200_000))
        return during, after

    during, after = asyncio.run(scenario())
    assert app.state.budget.held == 0
    assert during[0] == 503 and "receiving" in during[2]["detail"] and during[1]["retry-after"] == "1"
    assert after[0] == 400 and "form cannot be read" in after[2]["detail"]  # read in full once the budget is back


def test_hints_for_a_model_without_hint_inputs_are_refused_before_any_work():
    app = create_app(strong_colour_model(hints=False))

    def no_work(*args):
        raise AssertionError("the worker was given a request that should have been refused")

    app.state.service.colorize_upload = no_work
    many = json.dumps([{"x": 1, "y": 1, "rgb": [i % 256, 0, 0]} for i in range(1000)])
    with local_client(app) as client:
        reply = post(client, encoded(PHOTO), hints=many)
        assert reply.status_code == 422 and "takes no hints" in reply.json()["detail"]
        too_many = json.dumps([{"x": 1, "y": 1, "ab": [0, 0]}] * 1001)
        reply = post(client, encoded(PHOTO), hints=too_many)
        assert reply.status_code == 422 and "at most 1000 hints" in reply.json()["detail"]
        reply = post(client, encoded(PHOTO), hints="[" * 50_000 + "]" * 50_000)
        assert reply.status_code == 422 and "nested" in reply.json()["detail"]


def test_hints_nested_thousands_deep_or_not_utf8_are_422(client):
    reply = post(client, encoded(PHOTO), hints="[" * 90_000 + "]" * 90_000)
    assert reply.status_code == 422 and "nested" in reply.json()["detail"]
    files = {"file": ("photo.png", encoded(PHOTO), "image/png"), "hints": ("hints.json", b'[] \xff', "application/json")}
    reply = client.post("/api/colorize", files=files)
    assert reply.status_code == 422 and "not UTF-8" in reply.json()["detail"]


# --- A real server on a socket: `python -m colorkit serve` -----------------------------------------------------


@pytest.fixture(scope="module")
def live_server(colour_run):
    """``python -m colorkit serve --port 0`` with one worker, no queue and short body deadlines: its port.
    The port is read from the "serving" line, which is printed once the socket is bound."""
    process = subprocess.Popen(
        [sys.executable, "-m", "colorkit", "serve", "--run", str(colour_run), "--port", "0", "--workers", "1",
         "--queue", "0", "--max-upload-mb", "1", "--body-timeout", "4", "--idle-timeout", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=180)
        match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        yield int(match[1])
    finally:
        stop(process)


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 30.0) -> bytes:
    """Send ``head`` (and ``body``) on a new connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head + body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and b"connection: close" not in reply.lower():
                head_end = reply.index(b"\r\n\r\n") + 4
                length = re.search(rb"content-length: (\d+)", reply.lower())
                if length and len(reply) >= head_end + int(length[1]):
                    break
        return reply


def post_head(port: int, length: int, host: str | None = None) -> bytes:
    return (f"POST /api/colorize HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n\r\n").encode()


def slow_client(port: int, started: threading.Event) -> bytes:
    """Announce a 100 kB upload, then send a byte every 0.2 s until the server
    answers and closes (10 s at most); what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(post_head(port, 100_000))
        conn.settimeout(0.2)
        deadline, reply = time.monotonic() + 10, b""
        while time.monotonic() < deadline:
            try:
                conn.sendall(b"-")
                started.set()
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            reply += chunk
        return reply


def multipart(content: bytes) -> bytes:
    return (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + content + b"\r\n--x--\r\n")


def test_slow_uploads_do_not_lock_the_api_and_are_cut_off(live_server):
    port, upload = live_server, multipart(encoded(PHOTO))
    started = [threading.Event() for _ in range(3)]
    with ThreadPoolExecutor(3) as slow:
        clients = [slow.submit(slow_client, port, event) for event in started]
        assert all(event.wait(30) for event in started)
        time.sleep(0.5)  # the server has begun all three requests
        for _ in range(3):  # one worker, no queue: before, every slow client held the only place
            reply = raw_request(port, post_head(port, len(upload)), upload)
            assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        replies = [client.result(30) for client in clients]
    for reply in replies:  # cut off at the 4 s deadline (or, on a starved machine, by the 1 s pause limit)
        assert reply.startswith(b"HTTP/1.1 408") and b"upload" in reply, reply[:300]


def test_an_idle_upload_is_408_and_the_connection_closed(live_server):
    reply = raw_request(live_server, post_head(live_server, 100_000), b"--x\r\n", timeout=20)
    assert reply.startswith(b"HTTP/1.1 408") and b"for 1 s" in reply
    assert b"connection: close" in reply.lower()


# --- The Host header (DNS rebinding) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bound, extra, answered, refused",
    [
        ("127.0.0.1", (), ["127.0.0.1:8000", "localhost:8000", "LocalHost", "[::1]:8000", "127.0.0.1"],
         ["evil.example:8000", "evil.example", "127.0.0.1.evil.example", "192.168.1.5:8000", "", None, "[::1", "localhost:80x"]),
        ("::1", (), ["[::1]:8000", "[0:0::1]", "localhost:8000", "127.0.0.1:8000"], ["evil.example:8000"]),
        ("192.168.1.5", ("photos.lan",), ["192.168.1.5:8000", "photos.lan:8000", "PHOTOS.LAN"], ["localhost:8000", "evil.example"]),
        ("0.0.0.0", (), ["10.1.2.3:8000", "[fe80::1]:8000", "localhost:8000"], ["evil.example:8000", "localhost.evil.example"]),
        ("127.0.0.1", ("*",), ["evil.example:8000", "localhost"], []),
    ],
)
def test_the_host_names_a_server_answers_to(bound, extra, answered, refused):
    allowed = hosts.AllowedHosts.for_address(bound, extra)
    assert [host for host in answered if not allowed.allows(host)] == []
    assert [host for host in refused if allowed.allows(host)] == []


def test_a_request_for_another_host_name_is_400_with_the_way_to_allow_it(hint_model):
    with local_client(create_app(hint_model)) as client:
        assert client.get("/healthz").status_code == 200
        assert post(client, encoded(PHOTO), hints="[]").status_code == 200
        for name in ("evil.example:8000", "testserver"):
            reply = client.get("/healthz", headers={"host": name})
            assert reply.status_code == 400 and "--allow-host " + name.split(":")[0] in reply.json()["detail"]
        assert post(client, encoded(PHOTO), headers={"host": "evil.example"}).status_code == 400
    allowing = create_app(hint_model, hosts=hosts.AllowedHosts.for_address("127.0.0.1", ["testserver"]))
    with TestClient(allowing) as client:  # the test client's own name, "testserver"
        assert client.get("/healthz").status_code == 200


def test_the_live_server_answers_only_its_own_names(live_server):
    for name, status in (("localhost", b"200"), ("127.0.0.1", b"200"), ("[::1]", b"200"), ("evil.example", b"400")):
        reply = raw_request(live_server, f"GET /healthz HTTP/1.1\r\nHost: {name}:{live_server}\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.1 " + status), (name, reply[:300])


# --- The serve command: checked options, and "serving" once the socket is bound ------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-upload-mb", "inf"], "--max-upload-mb must be a positive number"),
        (["--max-upload-mb", "nan"], "--max-upload-mb must be a positive number"),
        (["--port", "99999"], "--port must be a whole number from 0 to 65535"),
        (["--port", "-1"], "--port must be a whole number from 0 to 65535"),
        (["--body-timeout", "0"], "--body-timeout must be a positive number of seconds"),
        (["--idle-timeout", "inf"], "--idle-timeout must be a positive number of seconds"),
        (["--allow-host", "a b"], "--allow-host takes a host name"),
    ],
)
def test_serve_refuses_a_bad_option_in_one_line_before_loading_anything(capsys, flags, message):
    assert cli.main(["serve", "--run", "somewhere", *flags]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_serve_on_a_port_in_use_is_one_line_and_never_says_serving(colour_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--run", str(colour_run), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    assert captured.err.count("\n") == 1 and f"cannot serve on 127.0.0.1:{port}" in captured.err

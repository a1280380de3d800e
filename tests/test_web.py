"""The HTTP API through FastAPI's test client: every status, limits, concurrency, no disk writes."""

import io
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import strong_colour_model
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as photos
from skimage.color import rgb2lab

from colorkit import cli, metrics
from colorkit.data import decode
from colorkit.web import Limits, create_app

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
    with TestClient(create_app(colour_run, Limits(max_upload_bytes=3_000_000, max_pixels=2_000_000))) as client:
        yield client


def post(client, content: bytes, name="photo.png", content_type="image/png", **fields):
    return client.post("/api/colorize", files={"file": (name, content, content_type)}, data=fields)


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
    with TestClient(create_app(strong_colour_model(hints=False))) as plain:
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
    with TestClient(app) as client, ThreadPoolExecutor(1) as background:
        first = background.submit(post, client, encoded(PHOTO))
        assert started.wait(30)
        busy = post(client, encoded(PHOTO))
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        release.set()
        assert first.result(60).status_code == 200
        assert post(client, encoded(PHOTO)).status_code == 200  # the place was given back


def test_many_requests_at_once_are_all_answered_correctly_or_refused(hint_model):
    uploads = [encoded(photos.astronaut()[i * 20 : i * 20 + 64 + i, : 48 + 3 * i]) for i in range(6)]
    with TestClient(create_app(hint_model, Limits(workers=2, queue=2))) as client:
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
    with TestClient(create_app(hint_model, Limits(workers=2, queue=14))) as client:
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
        from_file = decode.load_image(tmp_path / name)
        from_bytes = decode.load_image_bytes((tmp_path / name).read_bytes())
        for a, b in zip(from_file, from_bytes):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(decode.ImageTooLarge, match="the upload is a decompression bomb"):
        decode.load_image_bytes((tmp_path / "rgba.png").read_bytes(), max_pixels=100, name="the upload")


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

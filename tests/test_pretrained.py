"""colorkit.pretrained: Zhang et al.'s released networks against the reference PyTorch code.

The reference is the authors' own package (rz-colorization, a test dependency
with torch's CPU wheel): its networks with random weights (``pretrained=False``),
saved by ``torch.save`` in both file formats, are read by colorkit's reader
into the Keras networks, and both must compute the same colours. Nothing here
touches the network: downloads come from a server on 127.0.0.1."""

import ast
import contextlib
import functools
import http.server
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
colorizers = pytest.importorskip("colorizers")

from colorkit import color, colorize, hints, quantize  # noqa: E402
from colorkit.errors import ColorkitError  # noqa: E402
from colorkit.pretrained import (  # noqa: E402
    bin_centres, convert, download, identify, load, networks, read_state_dict, sha256, weights,
)

#: The issue's bound on the Keras-vs-PyTorch difference, in Lab units.
MEAN_LAB, MAX_LAB = 0.01, 0.5
#: A side that is not square (height, width), multiples of 8 as both networks need.
NON_SQUARE = (72, 120)


# --- Reference networks with random weights -------------------------------------------------------


def random_release(build, seed: int):
    """The reference network with random weights whose activations stay in a useful range.

    Default initialisation and BatchNorm's default statistics (mean 0, variance
    1) would shrink the activations layer after layer until every pixel got
    the same colour, and the comparison would prove little. So each BatchNorm
    gets a random scale and shift, and its running statistics are measured on
    one batch (momentum 1 in training mode): non-trivial values, as a trained
    network has. Then eval mode, as in use."""
    torch.manual_seed(seed)
    model = build(pretrained=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.train()
        model(torch.rand(2, 1, 64, 64) * 100)
        model.eval()
        if isinstance(model, colorizers.ECCVGenerator):
            model.model8[6].weight.mul_(10.0)  # sharper distributions over the bins
            model.model_out.weight.uniform_(-0.9, 0.9)  # 313 random bin centres (ab / 110)
    return model


@pytest.fixture(scope="module")
def eccv16_release(tmp_path_factory):
    """(reference network, its state dict saved as a zip archive: PyTorch >= 1.6)."""
    model = random_release(colorizers.eccv16, seed=0)
    path = tmp_path_factory.mktemp("eccv16") / "eccv16.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def siggraph17_release(tmp_path_factory):
    """(reference network, its state dict in the legacy format: before PyTorch 1.6)."""
    model = random_release(colorizers.siggraph17, seed=1)
    path = tmp_path_factory.mktemp("siggraph17") / "siggraph17.pth"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    return model, path


@pytest.fixture(scope="module")
def eccv16_keras(eccv16_release):
    return convert("eccv16", eccv16_release[1])


@pytest.fixture(scope="module")
def siggraph17_keras(siggraph17_release):
    return convert("siggraph17", siggraph17_release[1])


def photo_l(height: int, width: int) -> np.ndarray:
    """L of a real photo (scikit-image's astronaut) at ``height`` x ``width``, [H, W, 1]."""
    import skimage.data
    import skimage.transform

    rgb = skimage.transform.resize(skimage.data.astronaut(), (height, width), anti_aliasing=True)
    return np.asarray(color.rgb_to_lab(rgb.astype(np.float32))[..., :1])


def random_hints(height: int, width: int, seed: int, points: int = 12):
    """(hint_ab as ab / 110, hint_mask): ``points`` 3x3 patches of random colours."""
    rng = np.random.default_rng(seed)
    hint_ab, mask = np.zeros((height, width, 2), np.float32), np.zeros((height, width, 1), np.float32)
    for _ in range(points):
        y, x = rng.integers(0, height - 3), rng.integers(0, width - 3)
        hint_ab[y : y + 3, x : x + 3] = rng.uniform(-0.7, 0.7, 2)
        mask[y : y + 3, x : x + 3] = 1.0
    return hint_ab, mask


def nchw(array: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def assert_same_colours(keras_ab_norm, reference_ab):
    """Keras' ab / 110 against the reference's ab (Lab units): within float32 noise, and not flat."""
    difference = np.abs(np.asarray(keras_ab_norm) * 110.0 - reference_ab)
    assert difference.mean() < MEAN_LAB and difference.max() < MAX_LAB, (difference.mean(), difference.max())
    assert reference_ab.std(axis=(1, 2)).min() > 100 * MEAN_LAB  # the colours vary: agreeing means something


# --- Equivalence with the reference ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", [(256, 256), NON_SQUARE])
def test_eccv16_computes_what_the_reference_computes(eccv16_release, eccv16_keras, size):
    reference, _ = eccv16_release
    lightness = photo_l(*size)[None]
    with torch.no_grad():
        expected = reference(nchw(lightness)).numpy().transpose(0, 2, 3, 1)
    assert_same_colours(eccv16_keras(color.normalize_l(lightness), training=False), expected)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(256, 256), NON_SQUARE])
def test_siggraph17_computes_what_the_reference_computes_with_and_without_hints(
        siggraph17_release, siggraph17_keras, size):
    reference, _ = siggraph17_release
    lightness = np.repeat(photo_l(*size)[None], 2, axis=0)
    hint_ab, mask = random_hints(*size, seed=size[1])
    hint_ab = np.stack([np.zeros_like(hint_ab), hint_ab])  # image 0 without hints, image 1 with them
    mask = np.stack([np.zeros_like(mask), mask])
    with torch.no_grad():  # the release's own units: L, ab in Lab units, mask - 0.5
        expected = reference(nchw(lightness), nchw(hint_ab * 110.0), nchw(mask) - 0.5).numpy().transpose(0, 2, 3, 1)
    ours = siggraph17_keras([color.normalize_l(lightness), hint_ab, mask], training=False)
    assert_same_colours(ours, expected)
    assert np.abs(expected[1] - expected[0]).mean() > 1.0  # the hints change the colours


def test_every_tensor_of_the_release_has_its_layer_of_the_same_name_and_shape(eccv16_keras, siggraph17_keras):
    for keras_model, build in ((eccv16_keras, colorizers.eccv16), (siggraph17_keras, colorizers.siggraph17)):
        state = build(pretrained=False).state_dict()
        used = {name: tuple(tensor.shape) for name, tensor in state.items()
                if not name.endswith("num_batches_tracked") and name not in networks.SIGGRAPH17_UNUSED}
        assert weights.expected_tensors(keras_model) == used
        torch_count = sum(tensor.numel() for tensor in state.values() if tensor.dtype.is_floating_point)
        unused_count = sum(int(np.prod(shape)) for shape in networks.SIGGRAPH17_UNUSED.values())
        assert keras_model.count_params() == torch_count - (unused_count if keras_model.name == "siggraph17" else 0)
    assert eccv16_keras.get_layer("model1.2").strides == (2, 2)  # the release's conv1_2 halves
    assert eccv16_keras.get_layer("model4.6").epsilon == 1e-5  # PyTorch's BatchNorm epsilon


def test_the_bin_centres_come_from_the_file(eccv16_release, eccv16_keras):
    reference, _ = eccv16_release
    centres = reference.model_out.weight.detach().numpy()[:, :, 0, 0].T * 110.0  # [313, 2]
    np.testing.assert_allclose(bin_centres(eccv16_keras), centres, rtol=1e-6)
    assert not np.allclose(centres[:10], quantize.ab_bins()[:10])


def test_the_annealed_mean_is_the_softmax_of_logits_over_t(eccv16_release, eccv16_keras, tmp_path):
    import keras

    path = tmp_path / "eccv16.pth"
    path.symlink_to(eccv16_release[1])
    annealed = load(None, path=path, annealed_mean=True, temperature=0.38)  # the file says it is ECCV16
    lightness = color.normalize_l(photo_l(32, 48))[None]
    logits = keras.Model(eccv16_keras.input, eccv16_keras.get_layer("model8.6").output)(lightness)
    expected_quarter = color.normalize_ab(quantize.annealed_mean(logits, bin_centres(eccv16_keras), 0.38))
    expected = keras.layers.UpSampling2D(4, interpolation="bilinear")(expected_quarter)
    np.testing.assert_allclose(annealed(lightness), expected, atol=1e-5)
    plain = eccv16_keras(lightness)
    assert np.abs(np.asarray(annealed(lightness)) - np.asarray(plain)).mean() > 1e-3  # T = 0.38 is not the mean
    unannealed = load("eccv16", path=path, annealed_mean=True, temperature=1.0)
    np.testing.assert_allclose(unannealed(lightness), plain, atol=1e-5)  # T = 1: the release's expectation
    with pytest.raises(ColorkitError, match="ECCV16"):
        load("siggraph17", path=path, annealed_mean=True)


def test_a_file_says_which_release_it_holds():
    assert identify({"model1.0.weight": np.zeros((64, 1, 3, 3))}, "e.pth") == "eccv16"
    assert identify({"model1.0.weight": np.zeros((64, 4, 3, 3))}, "s.pth") == "siggraph17"
    for state in ({"model1.0.weight": np.zeros((64, 3, 3, 3))}, {"conv1.weight": np.zeros((64, 1, 3, 3))}):
        with pytest.raises(ColorkitError, match="x.pth holds neither released model"):
            identify(state, "x.pth")
    with pytest.raises(ColorkitError, match="name a released model"):
        load(None)


def test_the_kits_colorize_and_model_feed_take_both_models(eccv16_keras, siggraph17_keras):
    import skimage.data

    photo = skimage.data.chelsea()[:90, :130].astype(np.float32) / 255.0
    for model in (eccv16_keras, siggraph17_keras):
        rgb = colorize.colorize(model, photo)
        assert rgb.shape == photo.shape and np.isfinite(rgb).all()
        np.testing.assert_allclose(color.rgb_to_lab(rgb)[..., 0], color.rgb_to_lab(photo)[..., 0], atol=0.5)
    assert isinstance(hints.model_feed(eccv16_keras, np.zeros((1, 8, 8, 1), np.float32)), np.ndarray)
    feed = hints.model_feed(siggraph17_keras, np.zeros((1, 8, 8, 1), np.float32))
    assert set(feed) == {"l", hints.HINT_AB, hints.HINT_MASK}
    hint = [{"x": 60, "y": 40, "rgb": [20, 40, 230], "size": 9}]
    guided = colorize.colorize(siggraph17_keras, photo, hints=hint, size=64)  # a smaller working size: faster
    change = np.abs(guided - colorize.colorize(siggraph17_keras, photo, size=64))
    assert change[35:45, 55:65].mean() > 4 * change.mean()  # the hint changes colour most where it is
    with pytest.raises(ColorkitError, match="takes no hints"):
        hints.model_feed(eccv16_keras, np.zeros((1, 8, 8, 1), np.float32), hint_mask=np.ones((1, 8, 8, 1)))


def test_both_models_trace_for_any_image_size_as_export_and_serving_need(eccv16_keras, siggraph17_keras):
    import tensorflow as tf

    def spec(channels):
        return tf.TensorSpec([None, None, None, channels], tf.float32)

    for model, specs in ((eccv16_keras, spec(1)), (siggraph17_keras, [spec(1), spec(2), spec(1)])):
        traced = tf.function(lambda inputs, model=model: model(inputs, training=False)).get_concrete_function(specs)
        assert traced.structured_outputs.shape.as_list() == [None, None, None, 2]


def test_no_module_of_colorkit_imports_torch():
    root = Path(__file__).resolve().parent.parent / "colorkit"
    for source in root.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "torch" for name in names), source


# --- The reader -----------------------------------------------------------------------------------

FORMATS = {"zip": True, "legacy": False}


def save(state, path, file_format: str) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=FORMATS[file_format])
    return path


@pytest.mark.parametrize("file_format", FORMATS)
def test_the_reader_gives_every_tensor_exactly(tmp_path, file_format):
    big = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "matrix": big,
        "rows": big[1:3],  # shares the storage, at an offset
        "transposed": big.t(),  # another view: strides not row-major
        "double": torch.linspace(-1, 1, 5, dtype=torch.float64),
        "half": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "count": torch.tensor(7),  # int64 scalar, like num_batches_tracked
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }
    read = read_state_dict(save(state, tmp_path / "w.pth", file_format))
    assert list(read) == list(state)
    for name, tensor in state.items():
        assert read[name].shape == tuple(tensor.shape) and read[name].dtype == tensor.detach().numpy().dtype, name
        np.testing.assert_array_equal(read[name], tensor.detach().numpy())


class _Trap:
    """Unpickling this would run ``os.system``: the reader must refuse before that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("file_format", FORMATS)
def test_the_reader_runs_nothing_from_the_file(tmp_path, file_format):
    marker = tmp_path / "ran"
    assert pickle.loads(pickle.dumps(_Trap(tmp_path / "check"))) == 0 and (tmp_path / "check").exists()  # it would
    path = save({"weight": torch.ones(2), "trap": _Trap(marker)}, tmp_path / "w.pth", file_format)
    with pytest.raises(ColorkitError, match=r"names posix\.system, which a file of weights has no use for"):
        read_state_dict(path)
    assert not marker.exists()


def test_the_reader_refuses_what_is_not_a_state_dict(tmp_path):
    with pytest.raises(ColorkitError, match="not a PyTorch weights file"):
        read_state_dict(Path(__file__))
    with pytest.raises(ColorkitError, match="does not hold a state dict"):
        read_state_dict(save([torch.ones(2)], tmp_path / "list.pth", "zip"))
    with pytest.raises(ColorkitError, match="no weights file"):
        read_state_dict(tmp_path / "absent.pth")


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_truncated_file_is_one_clear_line(tmp_path, file_format):
    path = save({"weight": torch.rand(64, 64)}, tmp_path / "w.pth", file_format)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        path.write_bytes(data[:cut])
        with pytest.raises(ColorkitError) as caught:
            read_state_dict(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_damaged_zip_member_is_caught_by_its_checksum(tmp_path):
    path = save({"weight": torch.full((64, 64), 0.125)}, tmp_path / "w.pth", "zip")
    data = bytearray(path.read_bytes())
    data[data.index(np.full(16, 0.125, np.float32).tobytes()) + 8] ^= 1  # one weight changed inside the archive
    path.write_bytes(bytes(data))
    with pytest.raises(ColorkitError, match="damaged zip archive"):
        read_state_dict(path)


def test_a_file_for_another_network_or_with_a_changed_tensor_is_one_line(eccv16_keras, siggraph17_release):
    with pytest.raises(ColorkitError, match="does not hold the eccv16 weights: .*missing.*unknown.*wrong shape"):
        convert("eccv16", siggraph17_release[1])
    state = {name: tensor.numpy() for name, tensor in colorizers.eccv16(pretrained=False).state_dict().items()}
    weights.check_state_dict(state, eccv16_keras, "ok.pth")
    state["model3.2.weight"] = state["model3.2.weight"][:, :100]
    state["model5.4.bias"] = np.full(512, np.nan, np.float32)
    del state["model1.4.running_var"]
    with pytest.raises(ColorkitError) as caught:
        weights.check_state_dict(state, eccv16_keras, "bad.pth")
    message = str(caught.value)
    assert "1 tensors missing: model1.4.running_var" in message and "model3.2.weight is [256, 100, 3, 3]" in message
    assert "model5.4.bias" in message and "\n" not in message


# --- Download, checksum, cache --------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(folder: Path):
    """An HTTP server for ``folder`` on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_for_the_local_server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def test_a_download_is_kept_only_if_its_sha256_starts_as_its_name_says(tmp_path):
    served, cache = tmp_path / "served", tmp_path / "cache"
    served.mkdir()
    payload = os.urandom(1000)
    (served / "weights.bin").write_bytes(payload)
    good_name = f"tiny-{sha256(served / 'weights.bin')[:8]}.pth"
    (served / good_name).write_bytes(payload)
    (served / "tiny-9b330a0b.pth").write_bytes(payload)
    with serving(served) as base:
        with pytest.raises(ColorkitError, match="name promises one starting 9b330a0b.*not kept"):
            download("eccv16", url=f"{base}/tiny-9b330a0b.pth", cache_dir=cache)
        assert list(cache.iterdir()) == []  # nothing half-trusted stays, not even a temporary file
        got = download("eccv16", url=f"{base}/{good_name}", cache_dir=cache)
    assert got == cache / good_name and got.read_bytes() == payload
    assert download("eccv16", url=f"{base}/{good_name}", cache_dir=cache) == got  # found: no server needed


def test_offline_the_error_says_where_to_put_the_file(tmp_path):
    with serving(tmp_path) as base:
        pass  # the port is closed again: nothing answers there
    with pytest.raises(ColorkitError) as caught:
        load("siggraph17", url=f"{base}/siggraph17-df00044c.pth", cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert f"put it at {tmp_path / 'cache' / 'siggraph17-df00044c.pth'}" in message
    assert "load('siggraph17', path=FILE)" in message and "\n" not in message


def test_load_downloads_converts_once_and_then_reads_its_cache(tmp_path, eccv16_release, eccv16_keras):
    served, cache = tmp_path / "served", tmp_path / "cache"
    served.mkdir()
    name = f"colorization_release_v2-{sha256(eccv16_release[1])[:8]}.pth"
    (served / name).symlink_to(eccv16_release[1])
    (served / "colorization_release_v2-9b330a0b.pth").symlink_to(eccv16_release[1])
    with serving(served) as base:
        with pytest.raises(ColorkitError, match="SHA-256"):  # the release's name, other bytes
            load("eccv16", url=f"{base}/colorization_release_v2-9b330a0b.pth", cache_dir=cache)
        model = load("eccv16", url=f"{base}/{name}", cache_dir=cache)
    assert (cache / name).exists() and (cache / name).with_suffix(".keras").exists()
    for ours, reference in zip(model.get_weights(), eccv16_keras.get_weights()):
        np.testing.assert_array_equal(ours, reference)
    (cache / name).write_bytes(b"not read again: the cache is newer")
    os.utime(cache / name, (1, 1))
    again = load("eccv16", url=f"{base}/{name}", cache_dir=cache)  # no server: from the .keras cache
    np.testing.assert_array_equal(again.get_layer("model_out").kernel, eccv16_keras.get_layer("model_out").kernel)


def test_a_file_named_like_the_release_must_match_its_hash(tmp_path, siggraph17_release):
    impostor = tmp_path / "siggraph17-df00044c.pth"
    impostor.symlink_to(siggraph17_release[1])
    with pytest.raises(ColorkitError, match="delete it and download it again"):
        load("siggraph17", path=impostor)
    with pytest.raises(ColorkitError, match="unknown released model 'eccv17'; choose eccv16 or siggraph17"):
        load("eccv17", path=impostor)


# --- Everywhere a model is used: colorize, evaluate, export, serve, train --init ---------------------


def run_cli(*args) -> tuple[int, str, str]:
    import io as text_io
    from contextlib import redirect_stderr, redirect_stdout

    from colorkit import cli

    out, err = text_io.StringIO(), text_io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Ten small photo crops in train/ val/ test/ (a data folder for evaluate and train)."""
    import skimage.data
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    for index in range(10):
        split = "train" if index < 6 else ("val" if index < 8 else "test")
        photo = sources[index % 3]
        y, x = 20 * index, 15 * index
        (root / split).mkdir(exist_ok=True)
        Image.fromarray(photo[y : y + 96, x : x + 96]).save(root / split / f"crop{index}.png")
    return root


def test_the_cli_colorizes_evaluates_and_exports_with_a_released_file(eccv16_release, photo_folder, tmp_path):
    weights_file = eccv16_release[1]
    code, out, err = run_cli("colorize", photo_folder / "test", "--pretrained", weights_file, "-o", tmp_path / "out",
                             "--size", 64, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crop8.png", "crop9.png"]

    code, out, err = run_cli("evaluate", "--pretrained", weights_file, "--data", photo_folder, "--out",
                             tmp_path / "eval", "--size", 64)
    assert code == 0, err
    assert all(f"| {method} |" in out for method in ("model", "gray", "random"))
    assert (tmp_path / "eval" / "summary.csv").exists() and (tmp_path / "eval" / "per_image.csv").exists()

    code, _, err = run_cli("export", "--pretrained", weights_file, "--format", "keras", "-o", tmp_path / "m.keras")
    assert code == 0, err
    exported = colorize.load_colorizer(tmp_path / "m.keras")
    l_norm = color.normalize_l(photo_l(64, 64))[None]
    np.testing.assert_allclose(exported(l_norm), load(None, path=weights_file)(l_norm), atol=1e-5)


def test_a_name_that_is_not_a_release_or_file_is_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    code, _, err = run_cli("colorize", tmp_path / "in", "--pretrained", "eccv17", "-o", tmp_path / "out")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "eccv17" in err


def test_the_api_serves_siggraph17_and_its_hints_change_the_colours(siggraph17_release):
    import io as bytes_io

    from fastapi.testclient import TestClient
    from PIL import Image

    from colorkit.experiments import PRETRAINED
    from colorkit.web import create_app

    app = create_app(f"{PRETRAINED}{siggraph17_release[1]}", size=64)
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    described = client.get("/api/models").json()["models"][0]
    assert described["takes_hints"] and described["working_size"] == [64, 64]
    upload = bytes_io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(upload, format="PNG")
    files = {"file": ("gray.png", upload.getvalue(), "image/png")}
    plain = client.post("/api/colorize", files=files)
    hinted = client.post("/api/colorize", files=files, data={"hints": '[{"x": 30, "y": 20, "rgb": [220, 30, 30], "size": 9}]'})
    assert plain.status_code == hinted.status_code == 200
    pixels = [np.asarray(Image.open(bytes_io.BytesIO(r.content)).convert("RGB"), np.float32) for r in (plain, hinted)]
    assert np.abs(pixels[0] - pixels[1]).max() > 5  # the click is heard


def test_train_init_fine_tunes_the_released_eccv16_over_its_own_bins(eccv16_release, photo_folder, tmp_path):
    import json

    import keras

    run_dir = tmp_path / "run"
    code, _, err = run_cli("train", "--init", f"pretrained:{eccv16_release[1]}", "--data", photo_folder,
                           "--image-size", 32, "--batch-size", 4, "--epochs", 1, "--steps-per-epoch", 1,
                           "--out", run_dir, "--quiet")
    assert code == 0, err
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["init"].endswith(".pth") and config["learning_rate"] == 3e-5 and config["model_options"] == {}
    assert np.load(run_dir / "prior_313.npy").shape == (313,)  # the release's own bins, not the kit's
    trained = keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    start = load(None, path=eccv16_release[1])
    assert trained.get_layer("model1.0").get_weights()[0].shape == start.get_layer("model1.0").get_weights()[0].shape
    assert not np.array_equal(trained.get_layer("model8.6").get_weights()[0],
                              start.get_layer("model8.6").get_weights()[0])  # one step moved it
    colorizer = colorize.load_colorizer(run_dir)
    assert colorizer.outputs[0].shape[-1] == 2


@pytest.mark.parametrize("args, message", [
    (["--init", "pretrained:siggraph17"], "--init takes"),
    (["--init", "eccv16"], "--init takes"),
    (["--init", "pretrained:eccv16", "--model", "strided_cnn"], "zhang_eccv16"),
])
def test_init_is_checked_before_anything_is_written(tmp_path, args, message):
    code, _, err = run_cli("train", *args, "--out", tmp_path / "run")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()

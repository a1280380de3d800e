"""colorkit.colorize: any size, mode and format; L kept; ab inside the gamut; the colorize and export commands."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import strong_colour_model
from PIL import Image, ImageOps
from skimage import data as photos
from skimage.color import rgb2lab

from colorkit import batch, cli, color, colorize, metrics, models
from colorkit.data.decode import load_image, load_stored
from colorkit.errors import ColorkitError

#: how far 8-bit rounding of the output may move L (about 0.2 per channel step at mid-gray)
L_ROUNDING = 0.3


@pytest.fixture(scope="module")
def colour_model():
    return strong_colour_model()


def lightness(rgb):
    """skimage's L (uint8 is read as 0-255, floats as 0-1)."""
    return rgb2lab(rgb)[..., 0]


def as_float(uint8_image):
    return np.asarray(uint8_image, np.float32) / 255.0


# --- L is the input's, ab is inside the gamut, the size is the input's -----------------------------------


PHOTO_CROPS = {
    "astronaut (larger than the working size)": lambda: photos.astronaut(),
    "coffee, non-square": lambda: photos.coffee()[:301, :187],
    "chelsea 3x7": lambda: photos.chelsea()[100:103, 200:207],
    "one pixel": lambda: photos.astronaut()[250:251, 250:251],
    "rocket, odd sides": lambda: photos.rocket()[:63, :65],
}


@pytest.mark.parametrize("name", PHOTO_CROPS)
def test_output_keeps_the_size_and_l_of_the_input_and_lies_in_the_gamut(colour_model, name):
    image = as_float(PHOTO_CROPS[name]())
    out = colorize.colorize(colour_model, image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    saved = color.to_8bit(out)  # what a file holds
    assert np.abs(lightness(saved) - lightness(image)).max() < L_ROUNDING
    unclipped = color.lab_to_rgb(color.rgb_to_lab(out), clip=False)
    assert np.abs(unclipped - out).max() < 1e-3  # Lab -> RGB needed no clipping


def test_arrays_are_read_by_their_type_and_given_back_in_it(colour_model):
    photo = photos.coffee()[:40, :56]  # uint8, as Pillow and imageio give it
    from_floats = colorize.colorize(colour_model, photo / 255.0)
    from_bytes = colorize.colorize(colour_model, photo)
    assert from_bytes.dtype == np.uint8 and from_floats.dtype == np.float32
    assert np.abs(from_bytes.astype(int) - np.round(from_floats * 255)).max() <= 1  # float32 vs float64 scaling
    assert metrics.colorfulness(from_bytes / 255.0) > 10  # not the all-white image 0-255 read as 0-1 would give
    wide = colorize.colorize(colour_model, photo.astype(np.uint16) * 257)
    assert wide.dtype == np.uint16 and np.abs(wide / 65535.0 - from_floats).max() < 1e-3
    gray = colorize.colorize(colour_model, photo[..., 1])
    assert gray.shape == photo.shape and gray.dtype == np.uint8
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(colorize.colorize(colour_model, rgba), from_bytes)


@pytest.mark.parametrize("image, message", [
    (photos.coffee()[:8, :8].astype(np.float32), "values in \\[0, 1\\]"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    (np.zeros((8, 8, 3), np.int64), "uint8, uint16 or float"),
    (np.zeros((8, 8, 2), np.uint8), "shape"),
])
def test_arrays_it_cannot_read_are_refused_in_one_sentence(colour_model, image, message):
    with pytest.raises(ColorkitError, match=message):
        colorize.colorize(colour_model, image)


def test_the_raw_prediction_leaves_the_gamut_and_clipping_would_change_l(colour_model):
    """Why the gamut fit exists: the strong colour is not displayable at every L."""
    image = as_float(photos.astronaut())
    lab = colorize.colorize_lab(colorize.as_colorizer(colour_model), image)
    assert metrics.out_of_gamut(lab[..., 1:], lab[..., :1]) > 0.05
    clipped = color.lab_to_rgb(lab)
    assert np.abs(lightness(clipped) - lab[..., 0]).max() > 5.0
    assert metrics.colorfulness(colorize.colorize(colour_model, image)) > 30


def test_shrinking_into_the_gamut_keeps_l_and_hue_and_shrinks_no_more_than_needed(rng):
    lab = np.stack([rng.uniform(0, 100, 20000), rng.uniform(-120, 120, 20000), rng.uniform(-120, 120, 20000)], -1)
    lab = lab.astype(np.float32)
    fitted = color.shrink_into_gamut(lab)
    np.testing.assert_array_equal(fitted[:, 0], lab[:, 0])
    rgb = color.lab_to_rgb(fitted, clip=False)
    assert rgb.min() >= -color.GAMUT_TOLERANCE and rgb.max() <= 1 + color.GAMUT_TOLERANCE
    scale = np.linalg.norm(fitted[:, 1:], axis=-1) / np.linalg.norm(lab[:, 1:], axis=-1)
    assert scale.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(fitted[:, 1:], lab[:, 1:] * scale[:, None], atol=1e-3)  # same hue, only less chroma
    inside = color.in_gamut(lab)
    assert 0.05 < inside.mean() < 0.95
    np.testing.assert_array_equal(fitted[inside], lab[inside])
    a_little_more = np.concatenate([lab[:, :1], lab[:, 1:] * (scale + 1e-3)[:, None]], -1)  # the bisection: 2**-12
    assert not color.in_gamut(a_little_more[~inside]).any()


def test_a_colour_photo_is_made_gray_first(colour_model):
    photo = as_float(photos.chelsea()[:40, :50])
    gray = color.rgb_to_gray(photo)
    np.testing.assert_allclose(colorize.colorize(colour_model, photo), colorize.colorize(colour_model, gray), atol=2e-3)


# --- The working size --------------------------------------------------------------------------------------


def test_required_multiple_follows_the_network_shape():
    assert colorize.required_multiple(models.build("strided_cnn", width=0.125)) == 8
    assert colorize.required_multiple(models.build("unet_generator", width=0.125)) == 256  # depth 8 for any size
    assert colorize.required_multiple(models.build("unet_generator", width=0.125, depth=4)) == 16


def test_the_working_size_is_the_built_one_or_a_checked_size(colour_model):
    assert colorize.resolve_size(colour_model) == (64, 64)
    assert colorize.resolve_size(colour_model, 64) == (64, 64)
    with pytest.raises(ColorkitError, match="built for 64x64"):
        colorize.resolve_size(colour_model, 128)
    any_size = models.build("strided_cnn", width=0.125)
    assert colorize.resolve_size(any_size) == (colorize.DEFAULT_SIZE,) * 2
    assert colorize.resolve_size(any_size, 96) == (96, 96)
    with pytest.raises(ColorkitError, match="multiple of 8; use 96 or 104"):
        colorize.resolve_size(any_size, 100)
    with pytest.raises(ColorkitError, match="multiple of 8; use 8$"):
        colorize.resolve_size(any_size, 5)
    with pytest.raises(ColorkitError, match="whole number, at least 1"):
        colorize.resolve_size(any_size, 0)
    out = colorize.colorize(any_size, np.zeros((5, 9, 3), np.float32), size=32)
    assert out.shape == (5, 9, 3)


# --- Files: formats, folders, bad files, hints (the colorize command) ----------------------------------------


def saved(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def write_image(path, pixels, **options):
    return saved(Image.fromarray(pixels), path, **options)


def exif_rotated(pixels) -> dict:
    """Save options for a photo stored sideways whose EXIF says: rotate 90 degrees clockwise to view."""
    exif = Image.fromarray(pixels).getexif()
    exif[0x0112] = 6
    return {"exif": exif.tobytes()}


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """One file of every kind the issue names, with what its output must be (width, height, format)."""
    root = tmp_path_factory.mktemp("odd_files")
    photo = photos.astronaut()
    rgba = np.concatenate([photo[:50, :70], np.linspace(0, 255, 50 * 70).reshape(50, 70, 1).astype(np.uint8)], -1)
    wide = (photo[:40, :60, 0].astype(np.uint16) * 257)
    files = {
        "photo.jpg": (write_image(root / "photo.jpg", photo[:90, :130], quality=95), (130, 90, "JPEG")),
        "gray.png": (write_image(root / "gray.png", photo[:33, :21, 1]), (21, 33, "PNG")),
        "wide16.png": (saved(Image.fromarray(wide), root / "wide16.png"), (60, 40, "PNG")),
        "palette.png": (saved(Image.fromarray(photo[:30, :45]).convert("P"), root / "palette.png"), (45, 30, "PNG")),
        "alpha.png": (write_image(root / "alpha.png", rgba), (70, 50, "PNG")),
        "cmyk.jpg": (saved(Image.fromarray(photo[:24, :36]).convert("CMYK"), root / "cmyk.jpg"), (36, 24, "JPEG")),
        "rotated.jpg": (write_image(root / "rotated.jpg", photo[:20, :48], **exif_rotated(photo)), (20, 48, "JPEG")),
        "tiny.bmp": (write_image(root / "tiny.bmp", photo[:1, :1]), (1, 1, "PNG")),
    }
    return root, files


def run_colorize_cli(capsys, *args):
    code = cli.main(["colorize", *map(str, args), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_format_comes_out_at_its_size_with_its_l_and_alpha(colour_run, odd_files, tmp_path, capsys):
    root, files = odd_files
    code, out, err = run_colorize_cli(capsys, *[path for path, _ in files.values()], "--run", colour_run, "-o", tmp_path)
    assert code == 0 and err == "", err
    assert f"colorized {len(files)} of {len(files)} inputs" in out
    for name, (source, (width, height, image_format)) in files.items():
        target = tmp_path / batch.output_name(Path(name))
        with Image.open(target) as written:
            assert (written.size, written.format) == ((width, height), image_format), name
            pixels = np.asarray(written.convert("RGBA" if name == "alpha.png" else "RGB"))
        rgb, alpha = load_image(source)
        if image_format == "PNG":  # lossless: L is the input's up to 8-bit rounding
            assert np.abs(lightness(as_float(pixels[..., :3])) - lightness(rgb)).max() < L_ROUNDING, name
        if name == "alpha.png":
            np.testing.assert_array_equal(pixels[..., 3], np.round(alpha[..., 0] * 255).astype(np.uint8))
        if min(width, height) > 1:
            assert metrics.colorfulness(as_float(pixels[..., :3])) > 10, name


def test_a_folder_is_mirrored_and_bad_files_are_skipped_with_one_line_each(colour_run, tmp_path, capsys):
    source = tmp_path / "in"
    photo = photos.coffee()
    write_image(source / "a.png", photo[:32, :48])
    write_image(source / "sub" / "b.jpg", photo[:40, :40])
    write_image(source / "sub" / "deeper" / "c.gif", photo[:16, :24])
    (source / "sub" / "broken.jpg").write_bytes(b"this is not a JPEG")
    good = io.BytesIO()
    Image.fromarray(photo[:64, :64]).save(good, format="PNG")
    (source / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (source / "notes.txt").write_text("not an image, not listed")
    out_dir = tmp_path / "out"

    code, out, err = run_colorize_cli(capsys, source, "--run", colour_run, "-o", out_dir, "--batch-size", "2")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert any("broken.jpg" in line and "not a readable image" in line for line in lines)
    assert any("truncated.png" in line and "truncated" in line for line in lines)
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.jpg", "sub/deeper/c.png"]  # nothing for the bad files, no temporaries
    assert "colorized 3 of 5 inputs" in out


def test_missing_inputs_fail_but_do_not_stop_the_others(colour_run, tmp_path, capsys):
    image = write_image(tmp_path / "in" / "one.png", photos.coffee()[:20, :30])
    code, _, err = run_colorize_cli(capsys, tmp_path / "absent.png", image, "--run", colour_run, "-o", tmp_path / "out")
    assert code == 1 and "absent.png does not exist" in err
    assert (tmp_path / "out" / "one.png").exists()


@pytest.mark.parametrize("out", ["in", "in/colorized"])
def test_an_output_folder_inside_an_input_folder_is_refused_and_nothing_is_touched(colour_run, tmp_path, capsys, out):
    original = write_image(tmp_path / "in" / "photo.png", photos.coffee()[:24, :32]).read_bytes()
    code, _, err = run_colorize_cli(capsys, tmp_path / "in", "--run", colour_run, "-o", tmp_path / out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "inside the input folder" in err
    assert (tmp_path / "in" / "photo.png").read_bytes() == original
    assert sorted(p.name for p in (tmp_path / "in").rglob("*")) == ["photo.png"]


def test_a_file_whose_output_would_be_itself_is_skipped_untouched(colour_run, tmp_path, capsys):
    image = write_image(tmp_path / "photo.png", photos.coffee()[:24, :32])
    original = image.read_bytes()
    other = write_image(tmp_path / "elsewhere" / "other.gif", photos.coffee()[:20, :20])
    code, _, err = run_colorize_cli(capsys, image, other, "--run", colour_run, "-o", tmp_path)
    assert code == 1 and "would overwrite an input" in err and "photo.png" in err
    assert image.read_bytes() == original
    assert (tmp_path / "other.png").exists()  # the other input still went through


def test_a_failed_write_leaves_no_partial_file(colour_run, tmp_path, capsys, monkeypatch):
    for name in ("a", "b", "c"):
        write_image(tmp_path / "in" / f"{name}.png", photos.coffee()[:24, :24])
    real_replace = os.replace

    def full_disk_for_b(source, target):
        if Path(target).name == "b.png":
            raise OSError(28, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", full_disk_for_b)
    code, _, err = run_colorize_cli(capsys, tmp_path / "in", "--run", colour_run, "-o", tmp_path / "out")
    assert code == 1 and "cannot write" in err and "No space left" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_compare_writes_gray_and_colour_side_by_side(colour_run, tmp_path, capsys):
    image = write_image(tmp_path / "in.png", photos.astronaut()[:60, :80])
    code, _, _ = run_colorize_cli(capsys, image, "--run", colour_run, "-o", tmp_path / "out", "--compare")
    assert code == 0
    pair = as_float(Image.open(tmp_path / "out" / "in.png"))
    assert pair.shape == (60, 160, 3)
    gray, colour = pair[:, :80], pair[:, 80:]
    assert metrics.colorfulness(gray) < 1.0 < 20 < metrics.colorfulness(colour)
    np.testing.assert_allclose(lightness(gray), lightness(colour), atol=2 * L_ROUNDING)


def test_batches_give_the_same_pixels_as_one_image_at_a_time(colour_run, tmp_path, capsys):
    for index in range(5):
        write_image(tmp_path / "in" / f"{index}.png", photos.astronaut()[index * 30 : index * 30 + 41, :57])
    for batch in (1, 4):
        assert run_colorize_cli(capsys, tmp_path / "in", "--run", colour_run, "-o", tmp_path / f"b{batch}",
                                "--batch-size", batch)[0] == 0
    for index in range(5):
        one, four = (np.asarray(Image.open(tmp_path / f"b{b}" / f"{index}.png"), np.int16) for b in (1, 4))
        assert np.abs(one - four).max() <= 1


def test_hints_apply_to_every_input_and_an_outside_hint_fails_that_input_only(colour_run, tmp_path, capsys):
    small = write_image(tmp_path / "in" / "small.png", photos.coffee()[:20, :20])
    large = write_image(tmp_path / "in" / "large.png", photos.coffee()[:80, :80])
    hints_file = tmp_path / "hints.json"
    hints_file.write_text(json.dumps([{"x": 50, "y": 50, "rgb": [0, 0, 255], "size": 9}]))
    code, _, err = run_colorize_cli(capsys, small, large, "--run", colour_run, "-o", tmp_path / "out",
                                    "--hints", hints_file)
    assert code == 1
    assert err.strip().splitlines() == [f"error: {small}: hint 0 at x=50, y=50 lies outside the 20x20 image"]
    assert (tmp_path / "out" / "large.png").exists() and not (tmp_path / "out" / "small.png").exists()


@pytest.mark.parametrize(
    "hints_text, model_kind, message",
    [
        ('[{"x": 1, "y": 1, "rgb": [300, 0, 0]}]', "hints", "between 0 and 255"),
        ("not json", "hints", "not valid JSON"),
        ('[{"x": 1, "y": 1, "ab": [10, 10]}]', "plain", "takes no hints"),
    ],
)
def test_unusable_hints_are_a_usage_error_before_any_output(colour_run, tmp_path, capsys, hints_text, model_kind,
                                                            message):
    image = write_image(tmp_path / "in.png", photos.coffee()[:16, :16])
    model = colour_run / "checkpoints" / "best.keras"
    if model_kind == "plain":
        model = tmp_path / "plain.keras"
        strong_colour_model(hints=False).save(model)
    (tmp_path / "hints.json").write_text(hints_text)
    code, _, err = run_colorize_cli(capsys, image, "--model", model, "-o", tmp_path / "out",
                                    "--hints", tmp_path / "hints.json")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_reference_image_needs_a_global_hint_model(colour_run, tmp_path, capsys):
    image = write_image(tmp_path / "in.png", photos.coffee()[:16, :16])
    code, _, err = run_colorize_cli(capsys, image, "--run", colour_run, "-o", tmp_path / "out", "--reference", image)
    assert code == 2 and "global_hints=True" in err


def test_colorize_cli_on_a_run_folder_written_by_train(tmp_path, capsys):
    """A real run folder (config.json, checkpoints/best.keras) from one training step."""
    from colorkit import training
    from colorkit.data import sample
    from colorkit.experiments import experiment_config

    sample.build_sample_set(tmp_path / "sample")
    config = experiment_config("strided_cnn_dogs", "quick", dataset="sample", root=str(tmp_path / "sample"),
                               dataset_options={"kind": "shapes"}, image_size=32, batch_size=8, epochs=1,
                               steps_per_epoch=1, out=str(tmp_path / "run"), model_options={"width": 0.125},
                               sample_every=100)
    run = training.train(config, verbose=0)
    image = write_image(tmp_path / "in.png", photos.astronaut()[:45, :70])
    code, _, err = run_colorize_cli(capsys, image, "--run", run, "-o", tmp_path / "out")
    assert code == 0, err
    written = as_float(Image.open(tmp_path / "out" / "in.png"))
    assert written.shape == (45, 70, 3)
    assert np.abs(lightness(written) - lightness(as_float(photos.astronaut()[:45, :70]))).max() < L_ROUNDING


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "{tmp}"], "no trained model"),
        (["--model", "{tmp}/absent.keras"], "does not exist"),
        (["--run", "{tmp}", "--batch-size", "0"], "--batch-size"),
        (["--run", "{tmp}", "--max-pixels", "0"], "--max-pixels must be at least 1"),
        (["--run", "{tmp}", "--hints", "{tmp}/absent.json"], "cannot read the hints file"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    (tmp_path / "in").mkdir()
    code, _, err = run_colorize_cli(capsys, tmp_path / "in", *[a.format(tmp=tmp_path) for a in args], "-o",
                                    tmp_path / "out")
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# --- Export -------------------------------------------------------------------------------------------------


def test_export_keras_and_saved_model_give_the_models_output(colour_run, tmp_path, capsys):
    plain_run = tmp_path / "plain_run"
    (plain_run / "checkpoints").mkdir(parents=True)
    model = strong_colour_model(input_shape=(None, None, 1), hints=False)
    model.save(plain_run / "checkpoints" / "best.keras")
    l_norm = np.random.default_rng(0).uniform(-1, 1, (2, 48, 40, 1)).astype(np.float32)
    expected = model(l_norm, training=False).numpy()

    assert cli.main(["export", "--run", str(plain_run), "--format", "keras", "-o", str(tmp_path / "m.keras")]) == 0
    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(reloaded(l_norm, training=False).numpy(), expected, atol=1e-5)

    assert cli.main(["export", "--run", str(plain_run), "--format", "saved_model", "-o", str(tmp_path / "sm")]) == 0
    assert "exported the saved_model model" in capsys.readouterr().out
    served = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(served.serve(tf.constant(l_norm)).numpy(), expected, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "plain_run", "sm"]

    with pytest.raises(ColorkitError, match="already exists"):
        batch.export_model(plain_run, "saved_model", tmp_path / "sm")
    with pytest.raises(ColorkitError, match="must end in .keras"):
        batch.export_model(plain_run, "keras", tmp_path / "model.h5")


def test_a_failed_export_leaves_nothing(colour_run, tmp_path, monkeypatch):
    def fail_half_way(self, filepath, **options):
        Path(filepath).mkdir()
        (Path(filepath) / "saved_model.pb").write_bytes(b"partial")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(keras.Model, "export", fail_half_way)
    with pytest.raises(RuntimeError, match="interrupted"):
        batch.export_model(colour_run, "saved_model", tmp_path / "out" / "sm")
    assert list((tmp_path / "out").iterdir()) == []


# --- Full resolution a tile at a time: the same result as all at once, memory per pixel bounded ----------


def test_tiles_cover_every_pixel_once_in_bands_of_whole_rows():
    for height, width, pixels in [(7, 5, 12), (3, 40, 16), (1, 1, 4), (100, 3, 64)]:
        covered = np.zeros((height, width), int)
        for rows, columns in colorize.tiles(height, width, pixels):
            covered[rows, columns] += 1
            assert (rows.stop - rows.start) * (columns.stop - columns.start) <= max(pixels, 1)
            assert columns == slice(0, width) or width > pixels  # a row is cut only when it is longer than a tile
        np.testing.assert_array_equal(covered, 1)


@pytest.mark.parametrize("image_size, working, tile", [((300, 410), (64, 48), 5000), ((20, 900), (64, 64), 500),
                                                       ((30, 20), (64, 64), 50)])
def test_ab_resized_tile_by_tile_is_the_whole_image_resize(rng, image_size, working, tile):
    """Each tile's ab is the whole image's antialiased bilinear resize, cut there
    (to float32 rounding of the sample positions: far below an 8-bit step),
    whether the image is larger than the working size or smaller, and when
    rows are cut too (the second case)."""
    l_full = rng.uniform(0, 100, (*image_size, 1)).astype(np.float32)
    ab_norm = rng.uniform(-0.8, 0.8, (*working, 2)).astype(np.float32)
    whole = tf.image.resize(color.denormalize_ab(ab_norm), image_size, method="bilinear", antialias=True).numpy()
    np.testing.assert_array_equal(colorize.join_ab(l_full, ab_norm), np.concatenate([l_full, whole], -1))
    tiled = np.empty((*image_size, 3), np.float32)
    pieces = list(colorize.tiles(*image_size, pixels=tile))
    assert len(pieces) >= 12
    for rows, columns in pieces:
        tiled[rows, columns] = colorize.lab_tile(l_full, color.denormalize_ab(ab_norm), rows, columns)
    np.testing.assert_array_equal(tiled[..., :1], l_full)
    np.testing.assert_allclose(tiled[..., 1:], whole, atol=2e-3)


@pytest.mark.parametrize("image_size", [(300, 4000), (3000, 5), (30, 20)])
def test_the_networks_l_averaged_in_bands_is_the_whole_image_area_resize(rng, image_size):
    l_full = rng.uniform(0, 100, (*image_size, 1)).astype(np.float32)
    expected = tf.image.resize(l_full, (64, 48), method="area").numpy()
    np.testing.assert_allclose(colorize.working_lightness(l_full, (64, 48)), expected, atol=1e-3)


def test_lightness_reads_each_pixel_type_as_skimage_does(rng):
    photo = photos.coffee()[:50, :70]
    expected = lightness(photo)
    for pixels in (photo, photo.astype(np.uint16) * 257, photo / 255.0):
        np.testing.assert_allclose(colorize.lightness(pixels)[..., 0], expected, atol=2e-3)
    gray = photo[..., 1:2]
    np.testing.assert_allclose(colorize.lightness(gray)[..., 0], lightness(np.repeat(gray, 3, -1)), atol=2e-3)


def test_srgb_in_gamut_is_the_gamut_fit_then_the_conversion(rng):
    lab = np.stack([rng.uniform(0, 100, 70000), rng.uniform(-110, 110, 70000), rng.uniform(-110, 110, 70000)], -1)
    lab = lab.astype(np.float32)
    fitted = color.lab_to_rgb_in_gamut(lab)
    assert (~color.in_gamut(lab)).mean() > 0.3  # many pixels go through the fit
    np.testing.assert_allclose(colorize.srgb_in_gamut(lab, np.float32), fitted, atol=1e-5)
    eight_bit = colorize.srgb_in_gamut(lab, np.uint8).astype(int)
    assert np.abs(eight_bit - color.to_8bit(fitted)).max() <= 1  # a value on a rounding edge may go either way
    assert (eight_bit != color.to_8bit(fitted)).mean() < 1e-3


def test_an_image_colorized_in_many_tiles_matches_it_colorized_in_one(colour_model, monkeypatch):
    image = photos.astronaut()[:150, :170]
    whole = colorize.colorize(colour_model, image)
    monkeypatch.setattr(colorize, "TILE_PIXELS", 1000)
    tiled = colorize.colorize(colour_model, image)
    difference = np.abs(whole.astype(int) - tiled)
    assert difference.max() <= 1 and difference.mean() < 1e-3


def test_stored_pixels_keep_the_files_type_and_are_turned_upright_as_pillow_does(tmp_path):
    photo = photos.astronaut()[:20, :30]
    for orientation in range(1, 9):
        exif = Image.fromarray(photo).getexif()
        exif[0x0112] = orientation
        path = write_image(tmp_path / f"o{orientation}.png", photo, exif=exif.tobytes())
        stored = load_stored(path)
        with Image.open(path) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        assert stored.pixels.dtype == np.uint8
        np.testing.assert_array_equal(stored.pixels, expected, err_msg=f"orientation {orientation}")
    gray_jpeg = load_stored(write_image(tmp_path / "gray.jpg", photo[..., 0], quality=95))
    assert gray_jpeg.pixels.shape == (20, 30, 1) and gray_jpeg.pixels.dtype == np.uint8 and gray_jpeg.alpha is None
    wide = load_stored(saved(Image.fromarray(photo[..., 0].astype(np.uint16) * 257), tmp_path / "wide.png"))
    assert wide.pixels.dtype == np.uint16 and wide.pixels.shape == (20, 30, 1)
    rgba = np.concatenate([photo, np.full((20, 30, 1), 9, np.uint8)], -1)
    with_alpha = load_stored(write_image(tmp_path / "rgba.png", rgba))
    np.testing.assert_array_equal(with_alpha.pixels, photo)
    np.testing.assert_array_equal(with_alpha.alpha[..., 0], 9)
    rgba[..., 3] = 255
    assert load_stored(write_image(tmp_path / "opaque.png", rgba)).alpha is None


#: what colorizing a JPEG may take per pixel in these tests, in bytes: 9 to 11 are
#: measured (the stored 8-bit RGB, freed once its L is known; L in float32; the
#: 8-bit output; the allocators' leftovers); one full-resolution float32 RGB copy
#: (12 more) breaks it
JPEG_BYTES_PER_PIXEL_BOUND = 16

MEMORY_CHILD = """
import json, resource, sys
from pathlib import Path
from colorkit import batch, colorize, models
from colorkit.web.service import ColorizeService

small, large, how = sys.argv[1:4]
model = colorize.as_colorizer(models.build("strided_cnn", input_shape=(64, 64, 1), width=0.125, seed=0))
if how == "upload":
    service = ColorizeService(model, "model")
    run = lambda path: service.colorize_upload(Path(path).read_bytes())
else:
    run = lambda path: batch.colorize_jobs(model, [batch.Job(Path(path), Path(path).with_name("out.jpg"))],
                                           progress=False)
peaks = []
for path in (small, large):
    run(path)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(json.dumps(peaks))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read the Linux way")
@pytest.mark.parametrize("how", ["file", "upload"])
def test_memory_per_pixel_stays_bounded(tmp_path, how):
    """A child process colorizes a small JPEG, then a large one: the growth of
    its peak memory, per pixel more, stays under the bound. The small image
    runs first so that everything of a fixed size (TensorFlow, the compiled
    steps, a tile's intermediates) is already in the first peak."""
    sizes = {"small": (600, 800), "large": (2400, 3200)}
    paths = {}
    for name, (height, width) in sizes.items():
        picture = Image.fromarray(photos.astronaut()).resize((width, height), Image.BILINEAR)
        paths[name] = saved(picture, tmp_path / f"{name}.jpg", quality=90)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(colorize.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(paths["small"]), str(paths["large"]), how],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    small_peak, large_peak = json.loads(done.stdout.strip().splitlines()[-1])
    more_pixels = np.prod(sizes["large"]) - np.prod(sizes["small"])
    assert (large_peak - small_peak) / more_pixels < JPEG_BYTES_PER_PIXEL_BOUND


def test_a_folder_never_holds_more_pixels_in_flight_than_the_limit(colour_run, tmp_path, monkeypatch):
    for index in range(6):
        write_image(tmp_path / "in" / f"{index}.png", photos.astronaut()[index * 10 : index * 10 + 30, :40])
    write_image(tmp_path / "in" / "big.png", photos.astronaut()[:60, :50])
    held, load = [], batch._Flow.load

    def watched_load(flow, job, pixels, *task):
        load(flow, job, pixels, *task)
        held.append(flow.held)

    monkeypatch.setattr(batch._Flow, "load", watched_load)
    jobs, _ = batch.plan_jobs([tmp_path / "in"], tmp_path / "out")
    lines = []
    failures = batch.colorize_jobs(colorize.load_colorizer(colour_run), jobs, batch_size=4, progress=False,
                                   max_pixels=2500, on_error=lines.append)
    assert max(held) <= 2500 and len(held) == 7  # two 30x40 images at a time
    assert [source.name for source, _ in failures] == ["big.png"]
    assert "50x60 pixels declared, the limit is 2500" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{index}.png" for index in range(6)]

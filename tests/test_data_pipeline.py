"""The tf.data pipeline and file decoding: shapes, dtypes, ranges, values, and
every kind of awkward file a real folder holds."""

import io
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from colorkit import color
from colorkit.data import decode, pipeline
from colorkit.errors import ColorkitError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save(image: Image.Image, path, **options):
    image.save(path, **options)
    return str(path)


def _photo(rng, height=48, width=64):
    """A smooth colourful image (compresses like a photo, unlike noise)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 6, size=3)
    rgb = 0.5 + 0.45 * np.sin(np.stack([xx * 5 + phase[0], yy * 7 + phase[1], (xx + yy) * 4 + phase[2]], -1))
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_16bit_rgb(path, pixels: np.ndarray) -> str:
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    path.write_bytes(data)
    return str(path)


def _png_declaring(path, width: int, height: int) -> str:
    """A few-byte PNG whose header declares ``width`` x ``height`` (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b"")
    path.write_bytes(data)
    return str(path)


def _exif_rotated_jpeg(path) -> str:
    """Stored 40 wide x 20 high, left half red, right half blue, with EXIF
    orientation 6: a viewer rotates it 90 degrees clockwise, so it displays
    20 wide x 40 high with red on top."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = RED
    stored[:, 20:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(Image.fromarray(stored), path, exif=exif.tobytes(), quality=95)


def _truncated(path, source: bytes) -> str:
    path.write_bytes(source[: len(source) // 2])
    return str(path)


def _epoch(dataset):
    return np.concatenate([b.numpy() for b in dataset])


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# --- load_rgb / load_image: every file kind --------------------------------------------


def test_rgb_jpeg_and_png_load_as_float32_in_0_1(tmp_path, rng):
    photo = _photo(rng)
    png = np.asarray(photo, np.float32) / 255
    loaded = decode.load_rgb(_save(photo, tmp_path / "a.png"))
    assert loaded.dtype == np.float32 and loaded.shape == (48, 64, 3)
    np.testing.assert_allclose(loaded, png, atol=1e-6)
    jpeg = decode.load_rgb(_save(photo, tmp_path / "a.jpg", quality=95))
    assert jpeg.shape == (48, 64, 3) and np.abs(jpeg - png).mean() < 0.02


def test_grayscale_files_become_three_equal_channels(tmp_path):
    gray = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (4, 1)), "L")
    for name in ("g.png", "g.jpg"):
        rgb = decode.load_rgb(_save(gray, tmp_path / name))
        assert rgb.shape == (4, 32, 3)
        assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    np.testing.assert_allclose(decode.load_rgb(str(tmp_path / "g.png"))[0, :, 0], np.arange(0, 256, 8) / 255, atol=1e-6)


def test_rgba_is_composited_over_white_and_alpha_is_available(tmp_path):
    pixels = np.zeros((2, 2, 4), np.uint8)
    pixels[..., 0] = 255  # red everywhere
    pixels[0, 0, 3], pixels[0, 1, 3], pixels[1, :, 3] = 0, 255, 255
    path = _save(Image.fromarray(pixels, "RGBA"), tmp_path / "alpha.png")
    np.testing.assert_allclose(decode.load_rgb(path)[0, 0], [1, 1, 1])  # transparent -> white
    np.testing.assert_allclose(decode.load_rgb(path)[0, 1], [1, 0, 0])
    rgb, alpha = decode.load_image(path)
    np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])  # the stored colour is kept
    np.testing.assert_allclose(alpha[..., 0], [[0, 1], [1, 1]])
    assert decode.load_image(_save(Image.new("RGB", (2, 2)), tmp_path / "opaque.png"))[1] is None


def test_16bit_png_keeps_its_precision(tmp_path):
    gray = _save(Image.fromarray(np.full((3, 3), 40000, np.uint16)), tmp_path / "gray16.png")
    np.testing.assert_allclose(decode.load_rgb(gray), 40000 / 65535, atol=1e-6)  # 8 bits would give 156/255
    values = np.array([[[65535, 0, 1000], [12345, 54321, 32768]]], np.uint16)
    rgb16 = _png_16bit_rgb(tmp_path / "rgb16.png", values)
    np.testing.assert_allclose(decode.load_rgb(rgb16), values / 65535, atol=1e-6)


def test_palette_png_with_and_without_transparency(tmp_path):
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    plain = decode.load_rgb(_save(image, tmp_path / "p.png"))
    np.testing.assert_allclose(plain[0], [[1, 0, 0], [0, 0, 1]])
    with_transparency = decode.load_rgb(_save(image, tmp_path / "pt.png", transparency=1))
    np.testing.assert_allclose(with_transparency[0], [[1, 0, 0], [1, 1, 1]])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert decode.probe(path).route == decode.ROUTE_PIL
    rgb = decode.load_rgb(path)
    assert rgb.shape == (16, 16, 3)
    np.testing.assert_allclose(rgb.mean(axis=(0, 1)), [1, 0, 0], atol=0.03)


def test_exif_orientation_is_applied(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    rgb = decode.load_rgb(path)
    assert rgb.shape == (40, 20, 3)  # displayed size, not stored size
    np.testing.assert_allclose(rgb[:15].mean(axis=(0, 1)), [1, 0, 0], atol=0.05)
    np.testing.assert_allclose(rgb[25:].mean(axis=(0, 1)), [0, 0, 1], atol=0.05)


def test_one_pixel_image(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (10, 200, 30)), tmp_path / "dot.png")
    np.testing.assert_allclose(decode.load_rgb(path), [[[10 / 255, 200 / 255, 30 / 255]]], atol=1e-6)
    batch = next(iter(pipeline.make_rgb_dataset([path], image_size=8, batch_size=1)))
    assert batch.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(batch.numpy(), np.broadcast_to([10 / 255, 200 / 255, 30 / 255], (1, 8, 8, 3)), atol=1e-5)


def test_other_formats_go_through_pillow(tmp_path):
    for name in ("i.gif", "i.bmp", "i.tiff", "i.webp"):
        path = _save(Image.new("RGB", (6, 4), (0, 0, 255)), tmp_path / name)
        assert decode.probe(path).route == decode.ROUTE_PIL
        assert decode.load_rgb(path).shape == (4, 6, 3)
        assert decode.load_rgb(path)[..., 2].min() > 0.9


def test_a_decompression_bomb_is_refused(tmp_path):
    huge = _png_declaring(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ColorkitError, match="decompression bomb"):
        decode.load_rgb(huge)
    big = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(ColorkitError, match="decompression bomb .100x100 pixels declared, the limit is 5000"):
        decode.load_rgb(big, max_pixels=5000)


@pytest.mark.parametrize("kind", ["missing", "not an image", "truncated jpeg", "truncated png", "corrupt"])
def test_unreadable_files_are_user_errors_when_loaded_alone(tmp_path, rng, kind):
    path = {
        "missing": lambda: str(tmp_path / "absent.jpg"),
        "not an image": lambda: _save_bytes(tmp_path / "text.jpg", b"just some text, not a JPEG"),
        "truncated jpeg": lambda: _truncated(tmp_path / "cut.jpg", _encoded(_photo(rng), "JPEG")),
        "truncated png": lambda: _truncated(tmp_path / "cut.png", _encoded(_photo(rng), "PNG")),
        "corrupt": lambda: _save_bytes(tmp_path / "noise.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(300)),
    }[kind]()
    with pytest.raises(ColorkitError) as error:
        decode.load_rgb(path)
    assert path in str(error.value) and "\n" not in str(error.value)


def _save_bytes(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_a_jpeg_with_trailing_bytes_is_not_mistaken_for_truncated(tmp_path, rng):
    path = _save_bytes(tmp_path / "trailer.jpg", _encoded(_photo(rng), "JPEG") + b"camera maker notes")
    assert decode.probe(path).route == decode.ROUTE_JPEG


# --- scan_images ---------------------------------------------------------------------------------


@pytest.fixture
def messy_folder(tmp_path, rng):
    """Six good images of different kinds and five bad files."""
    folder = tmp_path / "messy"
    (folder / "sub").mkdir(parents=True)
    good = [
        _save(_photo(rng), folder / "photo.jpg"),
        _save(_photo(rng).convert("L"), folder / "gray.png"),
        _save(_photo(rng).convert("RGBA"), folder / "sub" / "rgba.png"),
        _save(_photo(rng).convert("P"), folder / "palette.png"),
        _save(_photo(rng).convert("CMYK"), folder / "cmyk.jpg"),
        _exif_rotated_jpeg(folder / "rotated.jpg"),
    ]
    bad = [
        _save_bytes(folder / "text.jpg", b"not an image at all"),
        _truncated(folder / "cut.jpg", _encoded(_photo(rng, 200, 200), "JPEG")),
        _truncated(folder / "cut.png", _encoded(_photo(rng, 200, 200), "PNG")),
        _save_bytes(folder / "noise.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(200)),
        _png_declaring(folder / "bomb.png", 100_000, 100_000),
    ]
    (folder / "readme.txt").write_text("ignored: not an image extension")
    return folder, sorted(good), sorted(bad)


def test_scan_sorts_good_files_from_bad_ones_with_reasons(messy_folder):
    folder, good, bad = messy_folder
    found, skipped = decode.scan_images(folder)
    assert found == good
    assert sorted(path for path, _ in skipped) == bad
    reasons = dict(skipped)
    assert reasons[str(folder / "cut.jpg")] == "a truncated JPEG"
    assert reasons[str(folder / "cut.png")] == "a truncated PNG"
    assert "decompression bomb" in reasons[str(folder / "bomb.png")]


def test_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ColorkitError, match="holds no image files"):
        decode.scan_images(tmp_path)
    with pytest.raises(ColorkitError, match="not a folder"):
        pipeline.make_dataset(tmp_path / "absent", 16, 2)
    with pytest.raises(ColorkitError, match="list of images is empty"):
        pipeline.make_dataset([], 16, 2)


# --- The dataset ------------------------------------------------------------------------------------


def test_bad_files_are_skipped_and_named_and_the_epoch_completes(messy_folder):
    folder, good, bad = messy_folder
    with pytest.warns(UserWarning, match=f"skipped {len(bad)} of {len(good) + len(bad)} files") as record:
        dataset = pipeline.make_dataset(folder, image_size=16, batch_size=4)
    message = str(record[0].message)
    assert all(path in message for path in bad)
    batches = list(dataset)
    assert sum(int(l.shape[0]) for l, _ in batches) == len(good)


def _damaged_png(path, rng) -> str:
    """A PNG whose header and end are intact but whose pixel data is not."""
    data = bytearray(_encoded(_photo(rng), "PNG"))
    data[60:80] = bytes(20)  # inside the IDAT chunk: its CRC no longer matches
    return _save_bytes(path, bytes(data))


def test_a_damaged_file_loaded_alone_is_a_user_error(tmp_path, rng):
    path = _damaged_png(tmp_path / "damaged.png", rng)
    with pytest.raises(ColorkitError, match="damaged"):
        decode.load_rgb(path)


def test_a_file_damaged_past_its_header_drops_out_without_ending_the_epoch(tmp_path, rng):
    paths = [_save(_photo(rng, 16, 16), tmp_path / f"{i}.png") for i in range(3)]
    paths.append(_damaged_png(tmp_path / "damaged.png", rng))  # fails in TensorFlow's decoder
    paths.append(_truncated(tmp_path / "cut.bmp", _encoded(_photo(rng), "BMP")))  # fails in Pillow's
    assert [decode.probe(p).route for p in paths[3:]] == [decode.ROUTE_PNG, decode.ROUTE_PIL]  # the probe cannot tell
    dataset = pipeline.make_rgb_dataset(paths, image_size=16, batch_size=2)
    assert int(dataset.cardinality()) == 3  # known length, for Keras progress and steps
    images = _epoch(dataset)
    assert images.shape == (5, 16, 16, 3)
    assert all(np.allclose(image, decode.load_rgb(p), atol=1e-6) for image, p in zip(images[:3], paths[:3]))
    lab = color.rgb_to_lab(images[3:])  # the damaged files' places are taken by mid-gray
    np.testing.assert_allclose(lab.mean(axis=(1, 2)), [[50, 0, 0]] * 2, atol=0.05)


def test_files_probed_once_serve_every_dataset_made_from_them(tmp_path, rng, monkeypatch):
    """A split is probed once (``probe_files``), however many datasets are made
    from it; plain paths are probed by each dataset, and give the same batches."""
    paths = [_save(_photo(rng, 20 + 8 * i, 30), tmp_path / f"{i}.{kind}") for i, kind in enumerate(["jpg", "png", "gif"])]
    paths.append(_save_bytes(tmp_path / "bad.jpg", b"not an image"))
    probed, real_probe = [], decode.probe
    monkeypatch.setattr(decode, "probe", lambda path, *args: probed.append(path) or real_probe(path, *args))
    with pytest.warns(UserWarning, match="skipped 1 of 4 files"):
        files = pipeline.probe_files(paths)
    assert len(files) == 3 and list(files.paths) == paths[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unreadable file is not named again
        options = dict(image_size=16, batch_size=2, augment=True, shuffle=True, seed=1)
        model_io = [_epoch(part) for part in zip(*pipeline.make_dataset(files, **options))]
        rgb = _epoch(pipeline.make_rgb_dataset(files, **options))
        kept, dropped = pipeline.drop_grayscale(files)
    assert sorted(probed) == sorted(paths)  # each file once
    assert rgb.shape == (3, 16, 16, 3) and sorted(kept) == sorted(paths[:3]) and dropped == []

    with pytest.warns(UserWarning, match="skipped 1 of 4 files"):
        from_paths = pipeline.make_dataset(paths, **options)
    assert len(probed) == 2 * len(paths)
    for ours, theirs in zip(model_io, (_epoch(part) for part in zip(*from_paths))):
        np.testing.assert_array_equal(ours, theirs)


def test_only_unreadable_files_is_a_clear_error(tmp_path):
    path = _save_bytes(tmp_path / "a.jpg", b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ColorkitError, match="none of the 1 files"):
            pipeline.make_dataset([path], 16, 2)


def test_model_io_batches_have_the_right_shapes_dtypes_and_ranges(tmp_path, rng):
    paths = [_save(_photo(rng, 40 + i, 60), tmp_path / f"{i}.jpg") for i in range(5)]
    batches = list(pipeline.make_dataset(paths, image_size=24, batch_size=2))
    assert [int(l.shape[0]) for l, _ in batches] == [2, 2, 1]
    for l_norm, ab_norm in batches:
        assert l_norm.dtype == tf.float32 and ab_norm.dtype == tf.float32
        assert l_norm.shape[1:] == (24, 24, 1) and ab_norm.shape[1:] == (24, 24, 2)
        assert -1.0 <= float(tf.reduce_min(l_norm)) and float(tf.reduce_max(l_norm)) <= 1.0
        assert float(tf.reduce_max(tf.abs(ab_norm))) <= 1.05
        assert float(tf.math.reduce_std(ab_norm)) > 0.01  # colourful input gives non-zero targets
    full = pipeline.make_dataset(paths, image_size=24, batch_size=2, drop_remainder=True)
    assert int(full.cardinality()) == 2 and len(list(full)) == 2


def test_model_io_values_match_the_colour_module_on_the_same_pixels(tmp_path, rng):
    """A PNG already at the model's size is not resized: the pipeline's (L, ab)
    must equal colorkit.color's conversion of the decoded file."""
    paths = [_save(_photo(rng, 32, 32), tmp_path / f"{i}.png") for i in range(3)]
    l_norm, ab_norm = next(iter(pipeline.make_dataset(paths, image_size=32, batch_size=3)))
    expected_l, expected_ab = color.rgb_to_model_io(np.stack([decode.load_rgb(p) for p in paths]))
    np.testing.assert_allclose(l_norm, expected_l, atol=1e-4)
    np.testing.assert_allclose(ab_norm, expected_ab, atol=1e-4)


def test_model_io_batches_are_the_rgb_batches_converted(tmp_path, rng):
    """Resized JPEGs (enlarged, and shrunk while decoding): ``make_dataset``'s
    (L, ab) is colorkit.color's conversion of ``make_rgb_dataset``'s pixels,
    which are 8-bit levels like any saved photo's."""
    paths = [_save(_photo(rng, *shape), tmp_path / f"{i}.jpg") for i, shape in enumerate([(20, 30), (90, 70), (300, 200)])]
    rgb = _epoch(pipeline.make_rgb_dataset(paths, image_size=24, batch_size=3))
    np.testing.assert_allclose(rgb * 255, np.round(rgb * 255), atol=1e-4)
    l_norm, ab_norm = next(iter(pipeline.make_dataset(paths, image_size=24, batch_size=3)))
    expected_l, expected_ab = color.rgb_to_model_io(rgb)
    np.testing.assert_allclose(l_norm, expected_l, atol=1e-5)
    np.testing.assert_allclose(ab_norm, expected_ab, atol=1e-5)


def test_8bit_rgb_batches_are_the_float_ones_as_levels_and_convert_to_the_same_model_io(tmp_path, rng):
    """``as_8bit`` stops before the float conversion: the same pixels (and the
    same flips), and converted by ``rgb_to_model_io_xla`` they are
    ``make_dataset``'s (L, ab), which match skimage."""
    from skimage.color import rgb2lab

    paths = [_save(_photo(rng, *shape), tmp_path / f"{i}.jpg") for i, shape in enumerate([(20, 30), (90, 70), (40, 40)])]
    options = dict(image_size=24, batch_size=2, augment=True, shuffle=True, seed=3)
    levels = _epoch(pipeline.make_rgb_dataset(paths, as_8bit=True, **options))
    assert levels.dtype == np.uint8 and levels.shape == (3, 24, 24, 3)
    np.testing.assert_array_equal(levels, np.round(_epoch(pipeline.make_rgb_dataset(paths, **options)) * 255))
    l_norm, ab_norm = (_epoch(part) for part in zip(*pipeline.make_dataset(paths, **options)))
    converted = color.rgb_to_model_io_xla(levels)
    np.testing.assert_allclose(converted[0], l_norm, atol=1e-6)
    np.testing.assert_allclose(converted[1], ab_norm, atol=1e-6)
    lab = rgb2lab(levels / 255.0)
    np.testing.assert_allclose(color.denormalize_l(l_norm), lab[..., :1], atol=1e-3)
    np.testing.assert_allclose(color.denormalize_ab(ab_norm), lab[..., 1:], atol=1e-3)
    with pytest.raises(ColorkitError, match="as_8bit"):
        pipeline.make_rgb_dataset(paths, as_8bit=True, augment=pipeline.augmentation_layers(), image_size=24,
                                  batch_size=2)


def test_every_dataset_runs_without_the_autotuner(tmp_path, rng):
    """Each public dataset turns tf.data's autotuner off at its end (with it on,
    deleting an iterator, as Keras does after every epoch, can stall)."""
    paths = [_save(_photo(rng, 16, 16), tmp_path / f"{i}.png") for i in range(2)]
    images = tf.data.Dataset.from_tensor_slices(np.zeros((2, 8, 8, 3), np.uint8))
    datasets = [pipeline.make_dataset(paths, 8, 2), pipeline.make_rgb_dataset(paths, 8, 2, augment=True),
                pipeline.batch_images(images, 8, 2), pipeline.to_model_io(images.batch(2))]
    assert [dataset.options().autotune.enabled for dataset in datasets] == [False] * 4
    assert all(len(list(dataset)) == 1 for dataset in datasets)


def test_resize_keeps_the_centred_square(tmp_path):
    """A 30 x 90 image: red | blue | red thirds. The centred square is the blue
    middle, so the batch is blue everywhere (stretching would show red)."""
    pixels = np.zeros((30, 90, 3), np.uint8)
    pixels[:, :30], pixels[:, 30:60], pixels[:, 60:] = RED, BLUE, RED
    for name in ("wide.png", "wide.jpg", "wide.gif"):
        path = _save(Image.fromarray(pixels), tmp_path / name)
        batch = next(iter(pipeline.make_rgb_dataset([path], image_size=12, batch_size=1))).numpy()
        assert batch.shape == (1, 12, 12, 3)
        np.testing.assert_allclose(batch[0, 2:-2, 2:-2].mean(axis=(0, 1)), [0, 0, 1], atol=0.08)


def test_large_jpegs_are_prescaled_while_decoding_and_still_correct(tmp_path, rng):
    photo = _photo(rng, 300, 400)
    path = _save(photo, tmp_path / "big.jpg", quality=95)
    square = np.asarray(photo, np.float32)[:, 50:350] / 255
    reference = tf.image.resize(square, [32, 32], antialias=True).numpy()
    batch = next(iter(pipeline.make_rgb_dataset([path], image_size=32, batch_size=1))).numpy()[0]
    assert np.abs(batch - reference).mean() < 0.02


def test_precomputed_jpeg_windows_are_the_centred_squares_libjpeg_decodes_at_each_scale(tmp_path, rng):
    """The pipeline hands libjpeg a crop window computed beforehand from the
    probed size; at every DCT scale it must be the centred square of the image
    libjpeg actually produces (odd sizes: libjpeg rounds scaled sides up)."""
    for height, width in ((201, 333), (333, 201), (97, 97), (250, 251)):
        path = _save(_photo(rng, height, width), tmp_path / f"{height}x{width}.jpg")
        found = decode.probe(path)
        assert (found.height, found.width, found.side) == (height, width, min(height, width))
        data = tf.io.read_file(path)
        for scale in decode.JPEG_SCALES:
            window = decode.jpeg_square_windows(height, width, scale).numpy()
            whole = tf.io.decode_jpeg(data, channels=3, ratio=scale).numpy()
            side = min(whole.shape[:2])
            top, left = (whole.shape[0] - side) // 2, (whole.shape[1] - side) // 2
            assert window.tolist() == [top, left, side, side], (height, width, scale)
            square = decode.tf_decode_jpeg_square(data, window, scale).numpy().astype(int)
            difference = np.abs(square - whole[top : top + side, left : left + side])
            assert difference.mean() < 0.05 and difference.max() <= 4, (height, width, scale)  # chroma upsampling at the cut


def test_files_needing_different_decoding_share_a_dataset_and_each_gets_its_own(tmp_path, rng):
    """How a file is decoded and resized is planned from its probe: a JPEG
    exactly 32 px (kept), a small one (enlarged), large ones (decoded at 1/8,
    then resized bilinearly or, still 2x too large, antialiased), a PNG
    (antialiased). Mixed in one dataset, each comes out as it does alone and
    close to its centred square resized directly."""
    shapes = {"exact.jpg": (32, 48), "small.jpg": (20, 30), "large.jpg": (300, 400),
              "huge.jpg": (600, 900), "large.png": (100, 150)}
    paths, references = [], []
    for name, (height, width) in shapes.items():
        photo = _photo(rng, height, width)
        paths.append(_save(photo, tmp_path / name, **({"quality": 95} if name.endswith(".jpg") else {})))
        left = (width - height) // 2
        square = decode.load_rgb(paths[-1])[:, left : left + height]
        references.append(tf.image.resize(square, [32, 32], antialias=True).numpy())
    mixed = _epoch(pipeline.make_rgb_dataset(paths, image_size=32, batch_size=len(paths)))
    for image, path, reference in zip(mixed, paths, references):
        alone = _epoch(pipeline.make_rgb_dataset([path], image_size=32, batch_size=1))[0]
        np.testing.assert_allclose(image, alone, atol=1e-6, err_msg=path)
        assert np.abs(image - reference).mean() < 0.02, path


def test_exif_rotation_happens_in_the_pipeline_too(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "rotated.jpg")
    batch = next(iter(pipeline.make_rgb_dataset([path], image_size=10, batch_size=1))).numpy()[0]
    np.testing.assert_allclose(batch[:3].mean(axis=(0, 1)), [1, 0, 0], atol=0.08)  # top: red
    np.testing.assert_allclose(batch[-3:].mean(axis=(0, 1)), [0, 0, 1], atol=0.08)  # bottom: blue


def test_shuffle_and_augmentation_are_seeded(tmp_path, rng):
    paths = [_save(_photo(rng, 16, 16), tmp_path / f"{i}.png") for i in range(12)]
    options = dict(image_size=16, batch_size=4, shuffle=True, augment=True)
    first = _epoch(pipeline.make_rgb_dataset(paths, seed=3, **options))
    again = _epoch(pipeline.make_rgb_dataset(paths, seed=3, **options))
    other = _epoch(pipeline.make_rgb_dataset(paths, seed=4, **options))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    ordered = _epoch(pipeline.make_rgb_dataset(paths, image_size=16, batch_size=4))
    shuffled = _epoch(pipeline.make_rgb_dataset(paths, image_size=16, batch_size=4, shuffle=True, seed=3))
    assert not np.array_equal(shuffled, ordered)
    order = [next(i for i, image in enumerate(ordered) if np.array_equal(image, s)) for s in shuffled]
    assert sorted(order) == list(range(12))  # the same images, each once


def test_default_augmentation_only_flips_and_keeps_colours(tmp_path, rng):
    path = _save(_photo(rng, 16, 16), tmp_path / "one.png")
    original = decode.load_rgb(path)
    out = _epoch(pipeline.make_rgb_dataset([path] * 24, image_size=16, batch_size=8, augment=True, seed=1))
    flipped = [bool(np.allclose(image, original[:, ::-1], atol=1e-6)) for image in out]
    unchanged = [bool(np.allclose(image, original, atol=1e-6)) for image in out]
    assert all(f or u for f, u in zip(flipped, unchanged))
    assert any(flipped) and any(unchanged)


def test_flips_are_drawn_anew_every_epoch_and_every_repeat_yet_seeded(tmp_path, rng):
    """The coin tosses follow the seed, but a second epoch through the same
    dataset (Keras starts a new iterator) and a second pass of ``repeat``
    flip differently: without shuffling, fixed flips would show each image
    the same way every epoch."""
    photo = _photo(rng, 16, 16)
    photo = Image.fromarray(np.concatenate([np.asarray(photo)[:, :8], np.zeros((16, 8, 3), np.uint8)], axis=1))
    path = _save(photo, tmp_path / "half_black.png")  # black on the right unless flipped

    def flips(images):
        return [bool(image[:, :8].max() == 0) for image in images]

    options = dict(image_size=16, batch_size=8, augment=True)
    dataset = pipeline.make_rgb_dataset([path] * 16, seed=5, **options)
    first, second = flips(_epoch(dataset)), flips(_epoch(dataset))
    assert first != second and 0 < sum(first) < 16
    again = pipeline.make_rgb_dataset([path] * 16, seed=5, **options)
    assert [flips(_epoch(again)), flips(_epoch(again))] == [first, second]
    repeated = pipeline.make_rgb_dataset([path] * 16, seed=5, repeat=True, **options)
    passes = flips(np.concatenate([batch.numpy() for batch in repeated.take(4)]))
    assert passes[:16] != passes[16:]
    unflipped = pipeline.make_rgb_dataset([path] * 16, seed=5, image_size=16, batch_size=8)
    assert not any(flips(_epoch(unflipped)))


def test_photometric_augmentation_is_opt_in_and_changes_colours(tmp_path, rng):
    path = _save(_photo(rng, 16, 16), tmp_path / "one.png")
    original = decode.load_rgb(path)
    layers = pipeline.augmentation_layers(flip=False, photometric=True, seed=0)
    out = _epoch(pipeline.make_rgb_dataset([path] * 8, image_size=16, batch_size=8, augment=layers))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - original).max() > 0.01
    with pytest.raises(ColorkitError):
        pipeline.augmentation_layers(flip=False, photometric=False)


def test_repeat_streams_past_the_end_of_the_file_list(tmp_path, rng):
    paths = [_save(_photo(rng, 16, 16), tmp_path / f"{i}.png") for i in range(3)]
    dataset = pipeline.make_rgb_dataset(paths, image_size=8, batch_size=2, shuffle=True, repeat=True)
    assert len(list(dataset.take(7))) == 7


def test_bad_sizes_are_user_errors(tmp_path, rng):
    path = _save(_photo(rng), tmp_path / "a.png")
    for size, batch in ((0, 2), (16, 0), (16.5, 2)):
        with pytest.raises(ColorkitError):
            pipeline.make_rgb_dataset([path], size, batch)


def test_batch_images_applies_the_same_policy_to_an_image_dataset():
    images = tf.data.Dataset.from_tensor_slices(tf.fill([3, 20, 30, 3], tf.constant(255, tf.uint8)))
    batch = next(iter(pipeline.to_model_io(pipeline.batch_images(images, image_size=10, batch_size=3))))
    assert batch[0].shape == (3, 10, 10, 1) and batch[1].shape == (3, 10, 10, 2)
    np.testing.assert_allclose(batch[0], 1.0, atol=1e-4)  # white: L = 100
    np.testing.assert_allclose(batch[1], 0.0, atol=1e-3)



def test_batch_images_flips_by_the_seed_when_augmenting():
    """TFDS images take the same seeded flips as files: black on the right
    unless mirrored; some mirrored, some not, the same for the same seed."""
    half = np.concatenate([np.full((16, 8, 3), 200, np.uint8), np.zeros((16, 8, 3), np.uint8)], axis=1)
    images = tf.data.Dataset.from_tensors(half).repeat(16)

    def flips(seed):
        batch = next(iter(pipeline.batch_images(images, image_size=16, batch_size=16, augment=True, seed=seed)))
        return [bool(image[:, :8].max() == 0) for image in batch.numpy()]

    assert 0 < sum(flips(2)) < 16 and flips(2) == flips(2)
    plain = next(iter(pipeline.batch_images(images, image_size=16, batch_size=16))).numpy()
    assert (plain[:, :, :8] > 0).all() and (plain[:, :, 8:] == 0).all()

# --- The grayscale filter ------------------------------------------------------------------------------


def test_drop_grayscale_drops_images_without_colour_and_reports_the_count(tmp_path, rng, caplog):
    colourful = _save(_photo(rng), tmp_path / "colour.jpg")
    gray = _save(_photo(rng).convert("L"), tmp_path / "gray.jpg")
    gray_as_rgb = _save(_photo(rng).convert("L").convert("RGB"), tmp_path / "gray_rgb.png")
    faint = np.full((8, 8, 3), 128, np.uint8)
    faint[0, 0] = (128, 128, 131)  # |b| about 2.4 at one pixel: still gray
    nearly_gray = _save(Image.fromarray(faint), tmp_path / "faint.png")
    one_dot = np.full((8, 8, 3), 128, np.uint8)
    one_dot[4, 4] = (200, 60, 60)  # a single clearly red pixel is colour
    dot = _save(Image.fromarray(one_dot), tmp_path / "dot.png")
    with caplog.at_level("INFO", logger="colorkit.data.pipeline"):
        kept, dropped = pipeline.drop_grayscale([colourful, gray, gray_as_rgb, nearly_gray, dot])
    assert sorted(kept) == sorted([colourful, dot])
    assert sorted(dropped) == sorted([gray, gray_as_rgb, nearly_gray])
    assert "dropped 3 of 5 images as grayscale" in caplog.text
    assert pipeline.drop_grayscale([nearly_gray], threshold=1.0) == ([nearly_gray], [])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two cores to hold a process to one of them")
def test_a_process_held_to_one_core_gives_tensorflow_one_thread_per_core():
    """Without it, a pipeline pinned to one core of two ran at half speed (bench/, one-core rows)."""
    env = {name: value for name, value in os.environ.items() if name != "TF_NUM_INTRAOP_THREADS"}

    def threads(cores=None):
        pin = f"os.sched_setaffinity(0, {cores!r}); " if cores else ""  # before colorkit is imported
        code = f"import os; {pin}import colorkit; print(os.environ.get('TF_NUM_INTRAOP_THREADS'))"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert threads({min(os.sched_getaffinity(0))}) == "1"
    if len(os.sched_getaffinity(0)) == os.cpu_count():  # not itself held to some cores
        assert threads() == "None"  # every core: TensorFlow's own default stands

"""The embedded sample set: deterministic bytes, the held-out rule, its layout,
and shapes whose colour a small CNN really learns from lightness."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from colorkit import color
from colorkit.data import pipeline, sample, sources
from colorkit.errors import ColorkitError


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "set"
    summary = sample.build_sample_set(root)
    return root, summary


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(built, tmp_path):
    root, _ = built
    sample.build_sample_set(tmp_path / "again")
    first, second = _files(root), _files(tmp_path / "again")
    assert list(first) == list(second)
    assert all(first[name] == second[name] for name in first)


def test_layout_counts_and_manifest_match_the_files(built):
    root, _ = built
    manifest = json.loads((root / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    assert on_disk == sorted(manifest["files"])
    split = sources.load_split("sample", root)
    for name in ("train", "val", "test"):
        photos = sum(sample.PHOTO_PLAN[name].values())
        assert len(split[name]) == photos + sample.SHAPE_COUNTS[name]
        assert all(Path(p).parent.parent.name == name for p in split[name])
    assert 200 <= len(split["train"]) <= 600 and 40 <= len(split["val"]) <= 120 and 40 <= len(split["test"]) <= 120
    with Image.open(split["test"][0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_no_test_photo_is_ever_cropped_into_train_or_val(built):
    root, _ = built
    files = json.loads((root / "manifest.json").read_text())["files"]
    sources_by_split = {
        name: {entry["source"] for path, entry in files.items() if path.startswith(name + "/") and entry["kind"] == "photo"}
        for name in ("train", "val", "test")
    }
    assert sources_by_split["test"] and sources_by_split["val"] and sources_by_split["train"]
    assert not sources_by_split["test"] & (sources_by_split["train"] | sources_by_split["val"])
    assert not sources_by_split["val"] & sources_by_split["train"]


def test_the_manifest_tells_the_truth_about_where_each_crop_came_from(built):
    """Re-cut a few crops from their recorded source photo and box: the pixels
    must be those in the file, so the held-out check above can be trusted."""
    root, _ = built
    files = json.loads((root / "manifest.json").read_text())["files"]
    photos = [(path, entry) for path, entry in sorted(files.items()) if entry["kind"] == "photo"]
    for path, entry in photos[:: len(photos) // 6]:
        x, y, side = entry["box_xy_side"]
        source = Image.fromarray(sample._source_photo(entry["source"]))
        expected = source.crop((x, y, x + side, y + side)).resize((64, 64), Image.LANCZOS)
        with Image.open(root / path) as stored:
            assert np.array_equal(np.asarray(stored), np.asarray(expected)), path


def test_shape_hue_follows_texture_not_lightness(built):
    """Shape images whose shapes all share one texture: their coloured pixels sit
    at the texture's hue, and the light and dark parts of the texture share it."""
    root, _ = built
    files = json.loads((root / "manifest.json").read_text())["files"]
    singles = [(p, e["textures"][0]) for p, e in sorted(files.items())
               if e["kind"] == "shape" and len(set(e["textures"])) == 1 and e["textures"][0] != sample.RANDOM_HUE]
    assert len(singles) >= 12
    for path, texture in singles[:12]:
        lab = color.rgb_to_lab(np.asarray(Image.open(root / path), np.float32) / 255)
        coloured = np.hypot(lab[..., 1], lab[..., 2]) > 15
        hue = np.degrees(np.arctan2(lab[coloured][:, 2], lab[coloured][:, 1]))
        a, b = sample.TEXTURE_AB[texture]
        assert np.median(np.abs((hue - np.degrees(np.arctan2(b, a)) + 180) % 360 - 180)) < 20, path
        lightness = lab[coloured][:, 0]
        assert lightness.max() - lightness.min() > 10  # the texture varies L


def test_speckled_shapes_take_many_hues(built):
    """Speckled shapes have no fixed hue: over the images whose only kind is
    speckles, the hues of their coloured pixels spread around the whole circle."""
    root, _ = built
    files = json.loads((root / "manifest.json").read_text())["files"]
    speckled = [p for p, e in sorted(files.items()) if e["kind"] == "shape" and set(e["textures"]) == {sample.RANDOM_HUE}]
    assert len(speckled) >= 4
    hues = []
    for path in speckled:
        lab = color.rgb_to_lab(np.asarray(Image.open(root / path), np.float32) / 255)
        coloured = np.hypot(lab[..., 1], lab[..., 2]) > 15
        hues.extend(np.degrees(np.arctan2(lab[coloured][:, 2], lab[coloured][:, 1]))[::50])
    sectors = np.unique(np.floor((np.asarray(hues) + 180) / 45))
    assert len(sectors) >= 5, sectors  # of the 8 sectors of 45 degrees


def test_moving_shape_frames_slide_a_coloured_disc_over_a_still_background():
    frames = sample.moving_shape_frames(count=5, step=3, seed=1)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, sample.moving_shape_frames(count=5, step=3, seed=1))
    ab = color.rgb_to_lab(frames)[..., 1:]
    coloured = np.hypot(ab[..., 0], ab[..., 1]) > 15  # the disc
    assert coloured[0].sum() > 200 and abs(int(coloured[-1].sum()) - int(coloured[0].sum())) < 30
    columns = [np.nonzero(c.any(axis=0))[0].mean() for c in coloured]
    np.testing.assert_allclose(np.diff(columns), 3.0, atol=0.6)  # it moves right by `step` per frame
    background = ~coloured.any(axis=0)
    np.testing.assert_array_equal(frames[0][background], frames[-1][background])  # the rest stands still
    still = np.linalg.norm(np.diff(ab, axis=0), axis=-1) < 1.0
    assert 0.8 < still.mean() < 1.0
    with pytest.raises(ColorkitError, match="moving_shape_frames"):
        sample.moving_shape_frames(count=1)


def test_kind_option_and_summary(built):
    root, summary = built
    shapes = sources.load_split("sample", root, kind="shapes")
    assert all("/shapes/" in p for name in shapes for p in shapes[name])
    assert summary.startswith("Built the sample set at")
    description = sample.describe_sample_set(root)
    assert "chelsea" in description and "grace_hopper" in description and "held out" in description
    assert "\n" not in description
    with pytest.raises(ColorkitError, match="'photos' or 'shapes'"):
        sources.load_split("sample", root, kind="faces")


def test_default_root_honours_colorkit_data_root_and_is_built_on_demand(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORKIT_DATA_ROOT", str(tmp_path / "data"))
    assert sample.default_sample_root() == tmp_path / "data" / "sample"
    with pytest.raises(ColorkitError, match="python -m colorkit data sample"):
        sample.describe_sample_set()
    split = sources.load_split("sample")
    assert sample.is_sample_set(tmp_path / "data" / "sample")
    assert all(p.startswith(str(tmp_path / "data" / "sample")) for p in split["train"])
    monkeypatch.delenv("COLORKIT_DATA_ROOT")
    assert sample.default_sample_root().parts[-2:] == ("datasets", "sample")


def test_rebuilding_replaces_a_set_but_never_a_folder_of_other_files(built, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(ColorkitError, match="not a sample set"):
        sample.build_sample_set(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"
    target = tmp_path / "set"
    sample.build_sample_set(target)
    (target / "train" / "stale.png").write_bytes(b"old")
    sample.build_sample_set(target)
    assert not (target / "train" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "set"]  # no temporary folders left


def test_a_set_built_by_older_code_is_rebuilt_when_loaded(built, tmp_path):
    root = tmp_path / "set"
    sample.build_sample_set(root)
    manifest = json.loads((root / sample.MANIFEST).read_text())
    older = {key: value for key, value in manifest.items() if key != "version"}  # as the first builds wrote it
    (root / sample.MANIFEST).write_text(json.dumps(older))
    (root / "train" / "shapes" / "shape_000.png").write_bytes(b"older bytes")
    assert sample.is_sample_set(root) and not sample.is_current_sample_set(root)
    sources.load_split("sample", root)
    assert sample.is_current_sample_set(root)
    assert _files(root) == _files(built[0])


@pytest.mark.slow
def test_a_small_cnn_learns_the_shapes_colours(built):
    """A 5-layer CNN trained ~20 s on the shapes beats the gray baseline (ab = 0)
    clearly on held-out shapes: the colour is learnable from L alone."""
    root, _ = built
    keras.utils.set_random_seed(0)
    split = sources.load_split("sample", root, kind="shapes")
    train = pipeline.make_dataset(split["train"], 64, 16, augment=True, shuffle=True, seed=0)
    held_out_l, held_out_ab = next(iter(pipeline.make_dataset(split["val"] + split["test"], 64, 60)))
    inputs = keras.Input((64, 64, 1))
    x = inputs
    for dilation in (1, 1, 2, 4, 1):
        x = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=dilation, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    model.fit(train, epochs=4, verbose=0, shuffle=False)  # the dataset shuffles itself
    model_mse = float(np.mean((model.predict(held_out_l, verbose=0) - held_out_ab.numpy()) ** 2))
    gray_mse = float(np.mean(held_out_ab.numpy() ** 2))
    assert model_mse < 0.75 * gray_mse

"""User-guided colorization: the hint format, hint tensors, simulated users, hint models, inference."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from skimage.color import rgb2lab

from colorkit import batch, color, colorize, evaluate, experiments, hints, models, quantize
from colorkit.experiments import experiment_config
from colorkit.errors import ColorkitError


# --- The hint format ------------------------------------------------------------------------


def test_parse_reads_rgb_and_ab_hints_from_objects_or_json():
    given = [{"x": 3, "y": 4.5, "rgb": [255, 0, 0], "size": 3}, {"x": 0, "y": 0, "ab": [-20, 35]}]
    parsed = hints.parse_hints(json.dumps(given), height=10, width=8)
    assert parsed == hints.parse_hints(given, 10, 8) == hints.parse_hints(json.dumps(given).encode(), 10, 8)
    red_ab = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0, 1:]
    np.testing.assert_allclose(parsed[0].ab, red_ab, atol=1e-3)
    assert (parsed[0].x, parsed[0].y, parsed[0].size) == (3.0, 4.5, 3)
    assert parsed[1].ab == (-20.0, 35.0) and parsed[1].size == 1
    assert hints.parse_hints(None, 5, 5) == [] and hints.parse_hints("[]", 5, 5) == []


@pytest.mark.parametrize(
    "given, message",
    [
        ("[{'x': 1}]", "not valid JSON"),
        ('{"x": 1, "y": 1, "ab": [0, 0]}', "JSON list"),
        ('[[1, 2]]', "must be an object"),
        ('[{"x": 10, "y": 1, "ab": [0, 0]}]', "outside the 10x5 image"),
        ('[{"x": -1, "y": 1, "ab": [0, 0]}]', "outside"),
        ('[{"x": 1, "y": 1}]', "exactly one colour"),
        ('[{"x": 1, "y": 1, "ab": [0, 0], "rgb": [0, 0, 0]}]', "exactly one colour"),
        ('[{"x": 1, "y": 1, "rgb": [256, 0, 0]}]', "between 0 and 255"),
        ('[{"x": 1, "y": 1, "rgb": [1, 2]}]', "list of 3 numbers"),
        ('[{"x": 1, "y": 1, "ab": [200, 0]}]', "between -128 and 128"),
        ('[{"x": 1, "y": 1, "ab": ["red", 0]}]', "finite number"),
        ('[{"x": 1, "y": 1, "ab": [0, 0], "size": 0}]', "size"),
        ('[{"x": 1, "y": 1, "ab": [0, 0], "size": 2.5}]', "size"),
        ('[{"x": 1, "y": 1, "ab": [0, 0], "colour": 1}]', "unknown keys"),
        ('[{"y": 1, "ab": [0, 0]}]', "position"),
        ('[{"x": true, "y": 1, "ab": [0, 0]}]', "finite number"),
    ],
)
def test_malformed_hints_are_one_clear_sentence(given, message):
    with pytest.raises(ColorkitError, match=message) as error:
        hints.parse_hints(given, height=5, width=10)
    assert "\n" not in str(error.value)


def test_too_many_hints_are_refused():
    with pytest.raises(ColorkitError, match="at most"):
        hints.parse_hints([{"x": 0, "y": 0, "ab": [0, 0]}] * (hints.MAX_HINTS + 1), 4, 4)


def test_hints_file_errors(tmp_path):
    with pytest.raises(ColorkitError, match="cannot read"):
        hints.load_hints_file(tmp_path / "absent.json", 4, 4)
    path = tmp_path / "hints.json"
    path.write_text('[{"x": 1, "y": 2, "ab": [10, 20]}]')
    assert hints.load_hints_file(path, 4, 4)[0].ab == (10.0, 20.0)


@pytest.mark.parametrize("depth", [50, 900, 100_000])
def test_deeply_nested_hints_are_one_short_sentence(depth):
    text = "[" * depth + "]" * depth
    with pytest.raises(ColorkitError, match="hint 0 must be an object|nested") as error:
        hints.parse_hints(text, 5, 10)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_hint_values_are_shown_short_in_errors():
    with pytest.raises(ColorkitError, match="rgb must be a list of 3 numbers") as error:
        hints.parse_hints([{"x": 1, "y": 1, "rgb": list(range(10_000))}], 5, 10)
    assert len(str(error.value)) < 300


def test_hints_that_are_not_utf8_are_one_clear_sentence(tmp_path):
    path = tmp_path / "hints.json"
    path.write_bytes('[{"x": 1, "y": 2, "ab": [10, 20]}] // caf\u00e9'.encode("latin-1"))
    with pytest.raises(ColorkitError, match="not UTF-8"):
        hints.load_hints_file(path, 4, 4)
    with pytest.raises(ColorkitError, match="not UTF-8"):
        batch.read_hints_file(path)
    with pytest.raises(ColorkitError, match="not UTF-8"):
        hints.parse_hints(path.read_bytes(), 4, 4)


def test_the_cli_says_one_line_for_a_nested_or_undecodable_hints_file(colour_run, tmp_path):
    image = tmp_path / "gray.png"
    image.write_bytes(b"")  # never read: the hints are checked first
    for name, content in (("deep.json", b"[" * 50_000 + b"]" * 50_000), ("latin.json", b'[{"x": 1, "y": 1, "ab": [0, 0]}] \xe9')):
        (tmp_path / name).write_bytes(content)
        result = subprocess.run([sys.executable, "-m", "colorkit", "colorize", str(image), "--run", str(colour_run),
                                 "-o", str(tmp_path / "out"), "--hints", str(tmp_path / name)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_rgb_hints_are_converted_to_lab_in_one_call(monkeypatch):
    calls = []
    real = color.rgb_to_lab
    monkeypatch.setattr(color, "rgb_to_lab", lambda rgb: calls.append(np.shape(rgb)) or real(rgb))
    given = [{"x": 1, "y": 1, "rgb": [i, 255 - i, 7]} for i in range(200)] + [{"x": 0, "y": 0, "ab": [5, 6]}]
    parsed = hints.parse_hints(given, 4, 4)
    assert calls == [(200, 3)]
    expected = rgb2lab(np.array([[[i, 255 - i, 7] for i in range(200)]]) / 255.0)[0, :, 1:]
    np.testing.assert_allclose([hint.ab for hint in parsed[:200]], expected, atol=2e-3)
    assert parsed[200].ab == (5.0, 6.0)


# --- Hint tensors ---------------------------------------------------------------------------------


def test_hint_maps_mark_each_patch_and_nothing_else():
    hint_ab, mask = hints.hint_maps([{"x": 4, "y": 2, "ab": [55, -22], "size": 3}], height=6, width=8)
    expected = np.zeros((6, 8), bool)
    expected[1:4, 3:6] = True
    np.testing.assert_array_equal(mask[..., 0] == 1, expected)
    np.testing.assert_allclose(hint_ab[expected], [[0.5, -0.2]] * 9, atol=1e-6)
    assert not hint_ab[~expected].any()


def test_hint_maps_scale_positions_to_the_working_size_and_later_hints_win():
    given = [{"x": 99, "y": 0, "ab": [110, 0], "size": 4}, {"x": 99, "y": 0, "ab": [0, 110]}]
    hint_ab, mask = hints.hint_maps(given, 100, 100, 10, 10)
    assert mask[..., 0].sum() == 1 and mask[0, 9, 0] == 1  # a 4 px patch is under one 10 px cell
    np.testing.assert_allclose(hint_ab[0, 9], [0.0, 1.0])  # the later hint overrides


def test_simulated_hints_reveal_patch_means_only_where_the_mask_is():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-1, 1, (3, 24, 20, 2)).astype(np.float32)
    hint_ab, mask = hints.simulate_hints(ab, seed=[4, 2], counts=1, max_points=1)
    hint_ab, mask = hint_ab.numpy(), mask.numpy()[..., 0]
    for image in range(3):
        rows, cols = np.nonzero(mask[image])
        patch = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        assert mask[image][patch].all() and mask[image].sum() == mask[image][patch].size  # one square
        assert 1 <= rows.max() - rows.min() + 1 <= hints.MAX_SIMULATED_PATCH
        np.testing.assert_allclose(hint_ab[image][patch], np.broadcast_to(ab[image][patch].mean(axis=(0, 1)),
                                                                           hint_ab[image][patch].shape), atol=1e-5)
        assert not hint_ab[image][mask[image] == 0].any()


def _painted_in_order(ab, seed, count, max_patch, location):
    """simulate_hints' answer painted point by point in numpy: the same draws (its
    seeds, split the same way), each patch's mean over its pixels inside the image,
    a later point painted over an earlier one."""
    batch, height, width, _ = ab.shape
    seeds = tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), 4)
    slots = [batch, count]
    sides = tf.random.stateless_uniform(slots, seeds[1], minval=1, maxval=max_patch + 1, dtype=tf.int32).numpy()
    rows = hints._positions(slots, height, seeds[2], location).numpy() - (sides - 1) // 2
    cols = hints._positions(slots, width, tf.reverse(seeds[3], [0]), location).numpy() - (sides - 1) // 2
    hint_ab, mask = np.zeros_like(ab), np.zeros(ab.shape[:3] + (1,), np.float32)
    for image in range(batch):
        for point in range(count):
            patch = (image, slice(max(rows[image, point], 0), max(rows[image, point] + sides[image, point], 0)),
                     slice(max(cols[image, point], 0), max(cols[image, point] + sides[image, point], 0)))
            hint_ab[patch] = ab[patch].mean(axis=(0, 1))
            mask[patch] = 1.0
    return hint_ab, mask


@pytest.mark.parametrize("location", hints.LOCATIONS)
def test_simulated_hints_match_painting_the_points_one_by_one(location):
    """Many overlapping patches, some cut by the border: every pixel holds the mean
    of the latest patch covering it, whatever way the function computes it."""
    ab = np.random.default_rng(5).uniform(-1, 1, (4, 20, 17, 2)).astype(np.float32)
    hint_ab, mask = hints.simulate_hints(ab, seed=[7, 3], counts=40, max_points=40, max_patch=9, location=location)
    expected_ab, expected_mask = _painted_in_order(ab, [7, 3], 40, 9, location)
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    np.testing.assert_allclose(hint_ab.numpy(), expected_ab, atol=1e-6)
    assert 0.3 < expected_mask.mean() < 1.0  # the patches overlap and leave gaps: the case is not trivial


def test_simulated_hint_counts_are_geometric_seeded_and_sometimes_zero():
    ab = np.zeros((4000, 8, 8, 2), np.float32)
    _, mask = hints.simulate_hints(ab, seed=[1, 1], max_patch=1)
    counts = mask.numpy().sum(axis=(1, 2, 3))  # 1-pixel patches: points = pixels unless they collide
    assert abs((counts == 0).mean() - hints.GEOMETRIC_P) < 0.02
    assert 5.0 < counts.mean() < 7.5  # geometric mean 7, minus collisions on an 8x8 grid
    again = hints.simulate_hints(ab, seed=[1, 1], max_patch=1)[1].numpy()
    other = hints.simulate_hints(ab, seed=[1, 2], max_patch=1)[1].numpy()
    assert np.array_equal(again, mask.numpy()) and not np.array_equal(other, mask.numpy())


def test_gaussian_locations_gather_around_the_centre():
    ab = np.zeros((500, 64, 64, 2), np.float32)
    _, mask = hints.simulate_hints(ab, seed=[0, 3], counts=4, max_points=4, max_patch=1, location="gaussian")
    rows, cols = np.nonzero(mask.numpy().sum(axis=(0, 3)))
    weights = mask.numpy().sum(axis=(0, 3))[rows, cols]
    assert abs(np.average(rows, weights=weights) - 32) < 1.5 and abs(np.average(cols, weights=weights) - 32) < 1.5
    with pytest.raises(ColorkitError, match="uniform or gaussian"):
        hints.simulate_hints(ab, seed=[0, 0], location="corners")


def test_histograms_sum_to_one_and_count_nearest_bins():
    rgb = np.zeros((2, 4, 4, 3), np.float32)
    rgb[0, :2] = [1.0, 0.0, 0.0]  # half red, half black
    l_norm, ab_norm = color.rgb_to_model_io(rgb)
    batch = hints.ab_histograms(ab_norm).numpy()
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-6)
    red_bin = quantize.nearest_bins(rgb2lab(np.array([[[1.0, 0, 0]]]))[0, 0, 1:])
    assert batch[0, red_bin] == pytest.approx(0.5) and batch[1].max() == pytest.approx(1.0)
    np.testing.assert_allclose(hints.ab_histogram(rgb[0]), batch[0], atol=1e-6)


def test_training_batches_carry_named_hint_inputs_with_new_hints_each_epoch():
    ab = np.random.default_rng(1).uniform(-1, 1, (8, 16, 16, 2)).astype(np.float32)
    batches = tf.data.Dataset.from_tensors((ab[..., :1], ab))
    data = hints.with_simulated_hints(batches, seed=3, global_hints=True)
    first, second = [next(iter(data))[0] for _ in range(2)]
    assert set(first) == {"l", hints.HINT_AB, hints.HINT_MASK, hints.HINT_HIST}
    assert first[hints.HINT_HIST].shape == (8, len(quantize.ab_bins()))
    given = first[hints.HINT_HIST].numpy().sum(axis=1)
    assert set(np.round(given, 5)) <= {0.0, 1.0}  # a whole histogram or none
    assert not np.array_equal(first[hints.HINT_MASK], second[hints.HINT_MASK])


# --- Hint models and inference -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unet_generator", "strided_cnn"])
def test_hint_models_take_named_hint_inputs(name):
    options = {"width": 0.125, "input_shape": (64, 32, 1)}
    model = models.build(name, hints=True, **options)
    assert [t.name for t in model.inputs][:3] == ["l", hints.HINT_AB, hints.HINT_MASK]
    assert hints.takes_hints(model) and not hints.takes_hints(models.build(name, **options))
    out = model(hints.model_feed(model, np.zeros((1, 64, 32, 1), np.float32)))
    assert out.shape == (1, 64, 32, 2)


def test_global_hints_need_local_hints_and_take_a_histogram():
    with pytest.raises(ColorkitError, match="needs hints=True"):
        models.build("unet_generator", global_hints=True)
    with pytest.raises(ColorkitError, match="global_hints"):
        models.build("unet_generator", hints=True, num_bins=10)
    model = models.build("unet_generator", hints=True, global_hints=True, width=0.125, num_bins=7)
    feed = hints.model_feed(model, np.zeros((2, 32, 32, 1), np.float32))
    assert feed[hints.HINT_HIST].shape == (2, 7) and hints.takes_global_hints(model)


def test_a_hint_changes_the_colour_near_it_and_the_empty_hint_is_the_automatic_path(rng):
    model = models.build("unet_generator", hints=True, width=0.125, seed=1)
    image = rng.uniform(0, 1, (40, 56, 3)).astype(np.float32)
    automatic = colorize.colorize(model, image)
    np.testing.assert_array_equal(colorize.colorize(model, image, hints=[]), automatic)
    zero_maps = hints.model_feed(model, np.zeros((1, 256, 256, 1), np.float32),
                                 *[m[None] for m in hints.hint_maps([], 40, 56, 256, 256)])
    assert all(not np.any(v) for k, v in zero_maps.items() if k != "l")  # empty hints are the zero maps
    guided = colorize.colorize(model, image, hints=[{"x": 28, "y": 20, "rgb": [0, 0, 255], "size": 9}])
    assert guided.shape == image.shape and not np.allclose(guided, automatic)
    np.testing.assert_allclose(color.rgb_to_lab(guided)[..., 0], color.rgb_to_lab(image)[..., 0], atol=0.5)


def test_hints_for_a_model_without_hint_inputs_are_refused(rng):
    model = models.build("strided_cnn", width=0.125)
    image = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    with pytest.raises(ColorkitError, match="takes no hints"):
        colorize.colorize(model, image, hints=[{"x": 1, "y": 1, "ab": [30, 30]}])
    with pytest.raises(ColorkitError, match="takes no hints"):
        colorize.colorize(model, image, reference=image)
    with pytest.raises(ColorkitError, match="outside"):
        colorize.colorize(models.build("strided_cnn", width=0.125, hints=True), image,
                          hints=[{"x": 40, "y": 1, "ab": [30, 30]}])


# --- Training with simulated users -------------------------------------------------------------------


def test_hint_options_are_checked_before_training():
    base = experiment_config("unet_gan", "quick")
    with pytest.raises(ColorkitError, match="hint variant"):
        base.replace(model="resnet18_decoder", trainer="fit", hints=True).check()
    with pytest.raises(ColorkitError, match="--global-hints"):
        base.replace(global_hints=True).check()
    with pytest.raises(ColorkitError, match="--hint-location"):
        base.replace(hints=True, hint_location="corner").check()


def test_train_hints_from_the_cli_then_evaluate_writes_the_hint_curve(sample_root, tmp_path):
    """`train --model unet_generator --hints` (the README's command) picks the user-guided
    recipe (regression with fit, local and global hints), then evaluate draws the curve."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "colorkit"]
    trained = subprocess.run(
        [*command, "train", "--model", "unet_generator", "--hints", "--data", str(sample_root), "--image-size", "32",
         "--epochs", "1", "--steps-per-epoch", "2", "--pretrain-epochs", "0", "--model-option", "width=0.125",
         "--out", str(run_dir), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert saved["hints"] is True and saved["global_hints"] is True
    assert saved["trainer"] == "fit" and saved["loss"] == "mae"
    evaluated = subprocess.run([*command, "evaluate", "--run", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    with open(run_dir / "eval" / "test" / "hints_curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["hints"]) for row in rows] == list(evaluate.HINT_COUNTS)
    assert all(np.isfinite(float(row["psnr_db"])) for row in rows)
    assert (run_dir / "eval" / "test" / "hints_curve.png").stat().st_size > 0


def test_the_default_recipe_of_a_hint_model_is_the_regression_one():
    """`train --model unet_generator` gets the GAN recipe; with `--hints`, SIGGRAPH17's regression."""
    assert experiments.default_experiment_for("unet_generator") == "unet_gan"
    assert experiments.default_experiment_for("unet_generator", hints=True) == "user_guided"
    assert experiments.default_experiment_for("strided_cnn", hints=True) == "strided_cnn_dogs"  # its only recipe

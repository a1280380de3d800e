"""colorkit.models.zhang: Zhang et al.'s ECCV16 network, its annealed-mean decode, saving."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from colorkit import color, colorize, evaluate, losses, models, quantize, training
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig, experiment_config
from colorkit.models.zhang import AnnealedMeanDecode, build_zhang_eccv16, zhang_inference_model

BINS = quantize.ab_bins()
Q = len(BINS)
SIZES = ((64, 64), (128, 128), (256, 256), (64, 96))


@pytest.fixture(scope="module")
def small_model():
    return build_zhang_eccv16(width=0.125)


def trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def expected_parameters(num_bins):
    """The architecture's arithmetic: kernels and biases of every conv, BatchNorm's scale and shift."""
    def conv(kernel, c_in, c_out):
        return kernel * kernel * c_in * c_out + c_out

    blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3), (512, 3), (512, 3)]
    total, channels = 0, 1
    for width, convs in blocks:
        for _ in range(convs):
            total += conv(3, channels, width)
            channels = width
        total += 2 * width
    total += conv(4, 512, 256) + 2 * conv(3, 256, 256)
    return total + conv(1, 256, num_bins)


# --- Shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", SIZES)
def test_logits_at_a_quarter_and_ab_at_full_resolution(small_model, rng, height, width):
    l_norm = rng.uniform(-1, 1, (1, height, width, 1)).astype(np.float32)
    logits = small_model.predict(l_norm, verbose=0)
    assert logits.shape == (1, height // 4, width // 4, Q) and logits.dtype == np.float32
    ab = zhang_inference_model(small_model).predict(l_norm, verbose=0)
    assert ab.shape == (1, height, width, 2)
    assert np.all(np.abs(ab) <= np.abs(BINS).max() / color.AB_RANGE + 1e-6)


def test_fixed_sizes_and_refused_sizes():
    model = build_zhang_eccv16(input_shape=(64, 96, 1), width=0.0625)
    assert model.output_shape == (None, 16, 24, Q)
    assert [tensor.name for tensor in model.inputs] == ["l"] and model.output_names == ["bin_logits"]
    assert zhang_inference_model(model).output_shape == (None, 64, 96, 2)
    with pytest.raises(ColorkitError, match="multiples of 8"):
        models.build("zhang_eccv16", input_shape=(60, 64, 1))
    with pytest.raises(ColorkitError, match="num_bins"):
        models.build("zhang_eccv16", num_bins=1)


# --- Architecture ------------------------------------------------------------------------------


def test_parameter_count_matches_the_architecture():
    for num_bins in (Q, 313):
        count = trainable_count(build_zhang_eccv16(num_bins=num_bins))
        assert count == expected_parameters(num_bins)
        assert abs(count - 32.2e6) / 32.2e6 < 0.01
    assert expected_parameters(Q) == 32_245_665


def test_blocks_strides_dilations_and_batchnorm_after_relu(small_model):
    layer = small_model.get_layer
    for block, convs, stride, dilation in [(1, 2, 2, 1), (2, 2, 2, 1), (3, 3, 2, 1), (4, 3, 1, 1),
                                           (5, 3, 1, 2), (6, 3, 1, 2), (7, 3, 1, 1)]:
        last = layer(f"conv{block}_{convs}")
        assert last.strides == (stride, stride) and last.dilation_rate == (dilation, dilation)
        assert all(layer(f"conv{block}_{i}").strides == (1, 1) for i in range(1, convs))
        assert all(layer(f"conv{block}_{i}").activation is keras.activations.relu for i in range(1, convs + 1))
        assert layer(f"conv{block}_norm").input is last.output  # BatchNorm right after the ReLU
    up = layer("conv8_1")
    assert isinstance(up, keras.layers.Conv2DTranspose) and up.kernel_size == (4, 4) and up.strides == (2, 2)
    assert layer("conv8_3").output is layer("bin_logits").input  # no BatchNorm in conv8
    assert layer("bin_logits").kernel_size == (1, 1)
    assert not any(isinstance(item, keras.layers.Lambda) for item in small_model.layers)


def test_same_seed_same_weights():
    first, again, other = (build_zhang_eccv16(width=0.0625, seed=s) for s in (5, 5, 6))
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), again.get_weights()))
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


# --- Decoding ---------------------------------------------------------------------------------


def test_decode_of_a_confident_map_is_that_bin_everywhere():
    bin_index = int(np.flatnonzero((BINS == [30, -40]).all(1))[0])
    logits = np.zeros((1, 3, 5, Q), np.float32)
    logits[..., bin_index] = 50.0
    ab_norm = AnnealedMeanDecode()(logits).numpy()
    assert ab_norm.shape == (1, 12, 20, 2)
    assert np.allclose(ab_norm, np.array([30, -40]) / color.AB_RANGE, atol=1e-5)


def test_decode_at_temperature_one_of_uniform_logits_is_the_mean_bin():
    ab_norm = AnnealedMeanDecode(temperature=1.0)(np.zeros((1, 2, 2, Q), np.float32)).numpy()
    assert np.allclose(ab_norm, BINS.mean(0) / color.AB_RANGE, atol=1e-5)


def test_decode_config_keeps_temperature_and_bins():
    custom = BINS[::2]
    layer = AnnealedMeanDecode(temperature=0.2, bins=custom)
    config = layer.get_config()
    assert config["temperature"] == 0.2 and np.array_equal(config["bins"], custom)
    assert np.array_equal(AnnealedMeanDecode.from_config(config).bins, custom)


def test_inference_model_refuses_other_bins_and_bad_temperatures(small_model):
    with pytest.raises(ColorkitError, match="trained on"):
        zhang_inference_model(small_model, bins=BINS[:100])
    with pytest.raises(ColorkitError, match="temperature"):
        zhang_inference_model(small_model, temperature=0.0)


# --- Training and saving -----------------------------------------------------------------------


def test_trains_with_the_rebalanced_loss_on_ab_targets(rng):
    model = build_zhang_eccv16(input_shape=(32, 32, 1), width=0.0625)
    l_norm = rng.uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    ab_quarter = color.normalize_ab(rng.uniform(-60, 60, (4, 8, 8, 2)).astype(np.float32))
    weights = quantize.rebalance_weights(quantize.empirical_prior(color.denormalize_ab(ab_quarter)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.RebalancedCrossEntropy(weights))
    history = model.fit(l_norm, ab_quarter, batch_size=2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


# --- The regression head (the "L2" row of Zhang et al.'s Table 1) -------------------------------


@pytest.fixture(scope="module")
def small_regression():
    return build_zhang_eccv16(width=0.125, head="regression")


@pytest.mark.parametrize("height, width", SIZES)
def test_regression_head_gives_ab_at_full_resolution(small_regression, rng, height, width):
    l_norm = rng.uniform(-1, 1, (2, height, width, 1)).astype(np.float32)
    ab = small_regression.predict(l_norm, verbose=0)
    assert ab.shape == (2, height, width, 2) and ab.dtype == np.float32
    assert np.all(np.abs(ab) <= 1.0)  # tanh on ab / 110, and bilinear interpolation stays inside
    assert small_regression.output_names == ["ab"]
    assert build_zhang_eccv16(input_shape=(64, 96, 1), width=0.0625, head="regression").output_shape == (None, 64, 96, 2)


def test_regression_head_upsamples_like_the_classification_decode(small_regression, rng):
    quarter = rng.uniform(-1, 1, (1, 5, 7, 2)).astype(np.float32)
    upsampled = small_regression.get_layer("ab")(quarter).numpy()
    np.testing.assert_allclose(upsampled, tf_resize(quarter, (20, 28)), atol=1e-6)
    np.testing.assert_allclose(small_regression.get_layer("ab_quarter").activation(np.array([9.0])), np.tanh(9.0))


def tf_resize(images, size):
    import tensorflow as tf

    return tf.image.resize(images, size, method="bilinear").numpy()


def test_regression_head_parameters_and_shared_trunk():
    count = trainable_count(build_zhang_eccv16(head="regression"))
    assert count == expected_parameters(Q) - (256 * Q + Q) + (256 * 2 + 2)
    regression = build_zhang_eccv16(width=0.0625, seed=3, head="regression")
    classification = build_zhang_eccv16(width=0.0625, seed=3)
    for layer in classification.layers:
        if layer.name != "bin_logits" and layer.weights:
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), regression.get_layer(layer.name).get_weights()))
    assert models.build("zhang_eccv16", width=0.0625, head="regression").output_shape == (None, None, None, 2)


def test_regression_head_refuses_bins_and_unknown_heads():
    with pytest.raises(ColorkitError, match="num_bins"):
        models.build("zhang_eccv16", width=0.0625, head="regression", num_bins=313)
    with pytest.raises(ColorkitError, match="head"):
        models.build("zhang_eccv16", width=0.0625, head="softmax")


def test_regression_head_is_used_as_it_is(small_regression):
    assert colorize.as_colorizer(small_regression) is small_regression
    with pytest.raises(ColorkitError, match="regression"):
        zhang_inference_model(small_regression)


def test_validate_pairs_each_head_with_its_loss():
    regression = TrainConfig(model="zhang_eccv16", model_options={"head": "regression"})
    regression.replace(loss="mse").check()
    regression.replace(model_options={"head": "classification"}, loss="rebalanced_ce").check()
    with pytest.raises(ColorkitError, match="rebalanced_ce needs a classification model"):
        regression.replace(loss="rebalanced_ce").check()
    with pytest.raises(ColorkitError, match="head=regression"):
        TrainConfig(model="zhang_eccv16", loss="mse").check()


@pytest.mark.slow
def test_regression_head_trains_colorizes_and_evaluates(sample_root, tmp_path):
    options = {**experiment_config("zhang_classification", "smoke").model_options, "head": "regression"}
    config = experiment_config("zhang_classification", "smoke", root=str(sample_root), loss="mse",
                               model_options=options, out=str(tmp_path / "run"))
    run_dir = training.train(config, verbose=0)
    assert not (run_dir / "prior.npy").exists()  # no bins: plain MSE on ab
    model = colorize.load_model(run_dir)
    assert model.output_names == ["ab"]
    image = np.random.default_rng(0).uniform(0, 1, (40, 56, 3)).astype(np.float32)
    assert colorize.colorize(model, image).shape == image.shape
    summary = (evaluate.evaluate_run(run_dir, out=tmp_path / "eval") / "summary.csv").read_text()
    assert summary.startswith("method,n,") and "model" in summary and "gray" in summary


def test_regression_head_loads_where_only_colorize_is_imported(tmp_path, rng):
    # colorize, serve and evaluate load run folders without importing zhang.py: the head's layer must be registered anyway
    model = build_zhang_eccv16(input_shape=(32, 32, 1), width=0.0625, head="regression")
    l_norm = rng.uniform(-1, 1, (1, 32, 32, 1)).astype(np.float32)
    model.save(tmp_path / "regression.keras")
    np.save(tmp_path / "l.npy", l_norm)
    script = ("import sys, numpy as np; from colorkit import colorize; "
              "m = colorize.load_model(sys.argv[1] + '/regression.keras'); "
              "np.save(sys.argv[1] + '/ab.npy', m.predict(np.load(sys.argv[1] + '/l.npy'), verbose=0))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "ab.npy"), model.predict(l_norm, verbose=0))


RELOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import colorkit.models.zhang  # registers AnnealedMeanDecode
    folder = sys.argv[1]
    l_norm = np.load(folder + "/l.npy")
    outputs = {name: keras.models.load_model(f"{folder}/{name}.keras").predict(l_norm, verbose=0)
               for name in ("logits", "decoded", "regression")}
    np.savez(folder + "/reloaded.npz", **outputs)
    """
)


def test_keras_round_trip_in_a_new_process(small_model, tmp_path, rng):
    decoded = zhang_inference_model(small_model, temperature=0.3)
    l_norm = rng.uniform(-1, 1, (2, 64, 96, 1)).astype(np.float32)
    regression = build_zhang_eccv16(width=0.125, head="regression")
    expected = {"logits": small_model.predict(l_norm, verbose=0), "decoded": decoded.predict(l_norm, verbose=0),
                "regression": regression.predict(l_norm, verbose=0)}
    small_model.save(tmp_path / "logits.keras")
    decoded.save(tmp_path / "decoded.keras")
    regression.save(tmp_path / "regression.keras")
    np.save(tmp_path / "l.npy", l_norm)
    subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path)], check=True, timeout=300)
    reloaded = np.load(tmp_path / "reloaded.npz")
    for name, values in expected.items():
        np.testing.assert_array_equal(reloaded[name], values, err_msg=name)

"""colorkit.metrics against hand-computed cases and reference implementations."""

import math

import keras
import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from colorkit import color, metrics
from colorkit.errors import ColorkitError


def constant_image(rgb, size=8):
    return np.broadcast_to(np.asarray(rgb, np.float64), (size, size, 3)).copy()


def photo_crops(size=64):
    """Two real colour photos shipped with scikit-image, cropped small."""
    astronaut = skimage.data.astronaut()[100 : 100 + size, 150 : 150 + size]
    return np.stack([astronaut, skimage.data.coffee()[:size, :size]]) / 255.0


# --- PSNR ---------------------------------------------------------------------------------


def test_psnr_of_a_known_mse():
    # every value off by 10 on the 0-255 scale: MSE = 100
    truth = constant_image([0.2, 0.4, 0.6])
    pred = truth + 10 / 255
    assert metrics.psnr(pred, truth) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)


def test_psnr_averages_per_image_values_not_the_pooled_mse():
    truth = np.stack([constant_image([100 / 255] * 3), constant_image([100 / 255] * 3)])
    pred = truth + np.array([10, 1]).reshape(2, 1, 1, 1) / 255  # MSE 100 and 1
    per_image = metrics.psnr_per_image(pred, truth)
    np.testing.assert_allclose(per_image, [10 * math.log10(650.25), 10 * math.log10(65025)])
    assert metrics.psnr(pred, truth) == pytest.approx(per_image.mean())
    pooled = 10 * math.log10(255**2 / 50.5)
    assert abs(metrics.psnr(pred, truth) - pooled) > 5


def test_report_convention_is_exactly_48_13_db_higher_on_8bit_images(rng):
    truth = rng.integers(0, 256, (3, 16, 16, 3)) / 255
    pred = rng.integers(0, 256, (3, 16, 16, 3)) / 255
    gap = metrics.psnr_per_image(pred, truth, "report") - metrics.psnr_per_image(pred, truth, "standard")
    np.testing.assert_allclose(gap, 20 * math.log10(255), rtol=0, atol=1e-9)
    assert round(metrics.PSNR_REPORT_OFFSET_DB, 2) == 48.13


def test_report_convention_uses_max_255_on_unit_range_data():
    # an error of 0.1 on [0, 1] data: MSE 0.01, so 10*log10(255**2 / 0.01) = 68.13 dB
    truth = constant_image([0.25, 0.25, 0.25])
    assert metrics.psnr(truth + 0.1, truth, "report") == pytest.approx(10 * math.log10(255**2 / 0.01))
    # the standard convention rounds to 8 bits: 0.35 * 255 = 89.25 -> 89, 0.25 * 255 = 63.75 -> 64
    assert metrics.psnr(truth + 0.1, truth) == pytest.approx(10 * math.log10(255**2 / 25**2))


def test_psnr_of_identical_images_is_capped_in_both_conventions():
    image = constant_image([0.1, 0.5, 0.9])
    assert metrics.psnr(image, image) == metrics.PSNR_CAP_DB
    assert metrics.psnr(image, image, "report") == pytest.approx(metrics.PSNR_CAP_DB + metrics.PSNR_REPORT_OFFSET_DB)


def test_per_image_functions_return_a_float_for_one_image_and_an_array_for_a_batch():
    image = constant_image([0.1, 0.5, 0.9])
    assert isinstance(metrics.psnr_per_image(image, image * 0.5), float)
    assert metrics.psnr_per_image(image[None], image[None] * 0.5).shape == (1,)


def test_psnr_rejects_bad_input():
    image = constant_image([0.5] * 3)
    with pytest.raises(ColorkitError, match="convention"):
        metrics.psnr(image, image, convention="skimage")
    with pytest.raises(ColorkitError, match="same shape"):
        metrics.psnr(image, image[:4])
    with pytest.raises(ColorkitError, match="RGB"):
        metrics.psnr(image[..., :2], image[..., :2])


# --- SSIM ---------------------------------------------------------------------------------


def test_ssim_matches_skimage_with_the_same_settings(rng):
    truth = photo_crops()
    pred = np.clip(truth + rng.normal(0, 0.08, truth.shape), 0, 1)
    expected = [
        structural_similarity(
            metrics.to_8bit_values(p),
            metrics.to_8bit_values(t),
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for p, t in zip(pred, truth)
    ]
    np.testing.assert_allclose(metrics.ssim_per_image(pred, truth), expected, atol=1e-5)
    assert metrics.ssim(pred, truth) == pytest.approx(np.mean(expected), abs=1e-5)


def test_ssim_of_identical_images_is_one_and_of_different_images_less():
    photos = photo_crops()
    assert metrics.ssim(photos, photos) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(photos[0], photos[1]) < 0.5


def test_ssim_refuses_images_smaller_than_its_window():
    tiny = constant_image([0.5] * 3, size=8)
    with pytest.raises(ColorkitError, match="11 x 11"):
        metrics.ssim(tiny, tiny)


# --- AuC ----------------------------------------------------------------------------------


def ab_with_errors(errors):
    """True ab at (10, -20); predictions off along a by the given distances."""
    true = np.tile([10.0, -20.0], (len(errors), 1))
    return true + np.stack([errors, np.zeros(len(errors))], -1), true


def test_auc_of_a_perfect_prediction_is_one(rng):
    ab = rng.uniform(-100, 100, (2, 8, 8, 2))
    assert metrics.auc(ab, ab) == 1.0


def test_auc_of_a_known_partial_prediction():
    # half the pixels exact, half off by 75: the curve is 0.5 up to t = 74 and 1 from t = 75;
    # trapezoids over 0..150: 0.5 * 74 + (0.5 + 1) / 2 + 1 * 75 = 112.75
    pred, true = ab_with_errors(np.array([0.0, 75.0]))
    assert metrics.auc(pred, true) == pytest.approx(112.75 / 150)


def test_auc_is_close_to_the_continuous_integral():
    # every pixel off by 30: the exact area is (150 - 30) / 150; the unit grid adds half a step
    pred, true = ab_with_errors(np.full(4, 30.0))
    assert metrics.auc(pred, true) == pytest.approx(120.5 / 150)
    assert abs(metrics.auc(pred, true) - 120 / 150) <= 0.5 / 150


def test_auc_counts_errors_beyond_150_as_nothing():
    pred, true = ab_with_errors(np.array([151.0, 200.0]))
    assert metrics.auc(pred, true) == 0.0


def test_auc_weights_and_custom_thresholds():
    pred, true = ab_with_errors(np.array([0.0, 75.0]))
    # the exact pixel weighted 3: the curve is 0.75 below t = 75
    weighted = metrics.auc(pred, true, weights=np.array([3.0, 1.0]))
    assert weighted == pytest.approx((0.75 * 74 + (0.75 + 1) / 2 + 75) / 150)
    # thresholds 0 and 100: curve 0.5 then 1, one trapezoid of mean height 0.75
    assert metrics.auc(pred, true, thresholds=[0, 100]) == pytest.approx(0.75)


def test_auc_rejects_bad_arguments():
    pred, true = ab_with_errors(np.array([0.0, 75.0]))
    with pytest.raises(ColorkitError, match="same shape"):
        metrics.auc(pred, true[:1])
    with pytest.raises(ColorkitError, match="increasing"):
        metrics.auc(pred, true, thresholds=[10, 0])
    with pytest.raises(ColorkitError, match="weights"):
        metrics.auc(pred, true, weights=np.zeros(2))


def two_bin_case():
    """Three pixels: two in a common bin (prior 2/3) predicted exactly, one in a
    rare bin (prior 1/3) predicted 200 away."""
    from colorkit import quantize

    bins = quantize.ab_bins()
    common, rare = bins[0], bins[len(bins) // 2]
    true = np.stack([common, common, rare]).astype(np.float64)
    pred = true.copy()
    pred[2] += [200.0, 0.0]
    prior = np.zeros(len(bins))
    prior[[0, len(bins) // 2]] = [2 / 3, 1 / 3]
    return pred, true, prior


def test_rebalanced_auc_weights_pixels_by_inverse_prior():
    pred, true, prior = two_bin_case()
    assert metrics.auc(pred, true) == pytest.approx(2 / 3)
    # weights 1.5, 1.5 and 3: the two bins count equally, so half the weight is exact
    assert metrics.auc_rebalanced(pred, true, prior) == pytest.approx(0.5)


def test_rebalanced_auc_gives_unseen_bins_the_rarest_seen_weight():
    pred, true, prior = two_bin_case()
    prior[len(prior) // 2] = 0.0  # the rare pixel's bin was never seen
    prior[1] = 1 / 3  # the rarest seen bin
    np.testing.assert_allclose(metrics.inverse_prior_weights(true, prior), [1.5, 1.5, 3.0])


def test_rebalanced_auc_rejects_a_prior_of_the_wrong_length():
    pred, true, prior = two_bin_case()
    with pytest.raises(ColorkitError, match="one probability per ab bin"):
        metrics.auc_rebalanced(pred, true, prior[:10])


# --- RGB difference, colourfulness, gamut ---------------------------------------------------------


def test_rgb_difference_signed_and_absolute():
    truth = constant_image([0.5, 0.5, 0.5], size=2)  # 4 pixels x 3 channels
    assert metrics.rgb_difference(truth - 0.1, truth) == pytest.approx(1.2)
    assert metrics.rgb_difference(truth + 0.1, truth) == pytest.approx(-1.2)
    assert metrics.rgb_difference(truth + 0.1, truth, absolute=True) == pytest.approx(1.2)


def test_signed_rgb_difference_cancels_for_a_wrong_image():
    truth = photo_crops()[0]
    swapped = truth[..., ::-1]  # red and blue exchanged: clearly wrong colours
    assert metrics.rgb_difference(swapped, truth) == pytest.approx(0.0, abs=1e-9)
    assert metrics.rgb_difference(swapped, truth, absolute=True) > 100


def test_colorfulness_hand_computed_cases():
    assert metrics.colorfulness(constant_image([0.4, 0.4, 0.4])) == 0.0
    # pure red: rg = 255, yb = 127.5 everywhere, no spread
    assert metrics.colorfulness(constant_image([1.0, 0.0, 0.0])) == pytest.approx(0.3 * math.hypot(255, 127.5))
    # half red, half black: rg in {255, 0} (mean = std = 127.5), yb in {127.5, 0}
    half = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    assert metrics.colorfulness(half) == pytest.approx(1.3 * math.hypot(127.5, 63.75))
    batch = np.stack([constant_image([0.4] * 3), constant_image([1.0, 0.0, 0.0])])
    np.testing.assert_allclose(metrics.colorfulness(batch), [0.0, 0.3 * math.hypot(255, 127.5)])


def test_out_of_gamut_on_known_colours(rng):
    # colours of real RGB pixels (cube corners and random ones) are in gamut
    corners = np.stack(np.meshgrid(*[[0.0, 1.0]] * 3), -1).reshape(1, 8, 3)
    in_gamut = np.concatenate([corners, rng.random((1, 56, 3))], axis=1)
    lab = color.rgb_to_lab(in_gamut)
    assert metrics.out_of_gamut(lab[..., 1:], lab[..., :1]) == 0.0
    # mid-gray is in; saturated red-yellow, green and blue at L = 50 are not
    lab = np.array([[[50, 0, 0], [50, 100, 100], [50, -100, 0], [50, 0, -100]]], np.float64)
    assert metrics.out_of_gamut(lab[..., 1:], lab[..., 0]) == pytest.approx(0.75)
    assert metrics.out_of_gamut(lab[None, ..., 1:], lab[None, ..., :1]).shape == (1,)


def test_out_of_gamut_rejects_mismatched_shapes():
    with pytest.raises(ColorkitError, match="out_of_gamut"):
        metrics.out_of_gamut(np.zeros((4, 4, 2)), np.zeros((4, 5, 1)))


def test_flicker_measures_colour_changes_only_where_the_truth_stays_still():
    true = np.zeros((3, 2, 2, 2))
    true[1:, 0, 0] = [40.0, 0.0]  # one pixel really changes colour after frame 0
    steady = true.copy()
    assert metrics.flicker(steady, true) == 0.0
    noisy = true.copy()
    noisy[1, 1, 1] = [3.0, 4.0]  # a still pixel jumps by 5 and back: 2 of the 7 still pixel pairs move by 5
    assert metrics.flicker(noisy, true) == pytest.approx(10.0 / 7.0)
    wrong = true.copy()
    wrong[1:, 0, 0] = 0.0  # missing the real change is not flicker
    assert metrics.flicker(wrong, true) == 0.0
    with pytest.raises(ColorkitError, match="flicker"):
        metrics.flicker(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2)))
    assert math.isnan(metrics.flicker(np.zeros((2, 1, 1, 2)), np.array([[[[0.0, 0.0]]], [[[50.0, 0.0]]]])))


# --- Semantic interpretability ----------------------------------------------------------------


def dominant_channel_classifier():
    """A 3-class 'classifier' with no weights: the class is the channel with the largest mean."""
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def test_semantic_interpretability_counts_top1_agreement():
    red, green, blue = (constant_image(c) for c in ([0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]))
    real = np.stack([red, green, blue, red])
    colorized = np.stack([red, green, red, blue])  # the last two get the wrong class
    classifier = dominant_channel_classifier()
    assert metrics.semantic_interpretability(classifier, colorized, real, batch_size=3) == pytest.approx(0.5)
    swap_red_blue = lambda images: images[..., ::-1]  # noqa: E731
    swapped = metrics.semantic_interpretability(classifier, colorized, real, preprocess=swap_red_blue)
    assert swapped == pytest.approx(0.5)


def test_semantic_interpretability_plumbing_with_an_untrained_classifier():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(features))
    classifier = keras.Model(inputs, outputs)
    photos = photo_crops(32)
    assert metrics.semantic_interpretability(classifier, photos, photos) == 1.0


def test_vgg16_preprocess_resizes_and_subtracts_the_imagenet_mean():
    black = np.zeros((2, 32, 48, 3), np.float32)
    prepared = np.asarray(metrics.vgg16_preprocess(black))
    assert prepared.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(prepared[0, 0, 0], [-103.939, -116.779, -123.68], atol=1e-3)


def test_vgg16_classifier_needs_a_local_weights_file(tmp_path):
    with pytest.raises(ColorkitError, match="not found"):
        metrics.vgg16_classifier(tmp_path / "missing.h5")
    corrupt = tmp_path / "vgg16.h5"
    corrupt.write_bytes(b"not an HDF5 file")
    with pytest.raises(ColorkitError, match="could not be loaded"):
        metrics.vgg16_classifier(corrupt)


# --- Baselines and tables -----------------------------------------------------------------------


def test_gray_baseline_keeps_lightness_and_removes_colour():
    photos = photo_crops(32)
    lab, gray_lab = color.rgb_to_lab(photos), color.rgb_to_lab(metrics.gray_baseline(photos))
    np.testing.assert_allclose(gray_lab[..., 0], lab[..., 0], atol=1e-2)
    assert np.abs(gray_lab[..., 1:]).max() < 0.1


def test_random_baseline_gives_each_image_another_images_colours():
    # uniform colours at L = 60, all inside the gamut, so no clipping blurs the check
    chroma = np.array([[20, 10], [-20, 15], [5, -25], [-10, -10]], np.float64)
    lab = np.concatenate([np.full((4, 1), 60.0), chroma], axis=-1)
    rgb = np.broadcast_to(color.lab_to_rgb(lab)[:, None, None], (4, 8, 8, 3))
    result = color.rgb_to_lab(metrics.random_baseline(rgb, seed=3))[:, 0, 0]
    np.testing.assert_allclose(result[:, 0], 60.0, atol=1e-2)
    donors = [np.argmin(np.abs(chroma - ab).sum(-1)) for ab in result[:, 1:]]
    assert sorted(donors) == [0, 1, 2, 3] and all(d != i for i, d in enumerate(donors))
    np.testing.assert_array_equal(metrics.random_baseline(rgb, seed=3), metrics.random_baseline(rgb, seed=3))
    with pytest.raises(ColorkitError, match="at least two"):
        metrics.random_baseline(rgb[:1])


def test_evaluate_images_rows():
    photos = photo_crops(32)
    perfect = metrics.evaluate_images(photos, photos)
    assert [list(row) for row in perfect] == [list(metrics.METRIC_COLUMNS)] * 2
    assert all(row["psnr_db"] == metrics.PSNR_CAP_DB and row["auc_raw"] == 1.0 for row in perfect)
    assert all(row["ssim"] == pytest.approx(1.0, abs=1e-6) for row in perfect)
    assert all(math.isnan(row["auc_rebal"]) and math.isnan(row["out_of_gamut"]) for row in perfect)
    gray = metrics.evaluate_images(metrics.gray_baseline(photos), photos)
    assert all(row["auc_raw"] < 1.0 and row["colorfulness"] < 1.0 for row in gray)


def test_evaluate_images_with_raw_ab_and_a_prior():
    photos = photo_crops(32)
    true_ab = color.rgb_to_lab(photos)[..., 1:]
    wild_ab = true_ab.copy()
    wild_ab[:, :16] = [100.0, -100.0]  # the top half of each image far outside sRGB
    from colorkit import quantize

    prior = np.full(len(quantize.ab_bins()), 1.0)
    rows = metrics.evaluate_images(photos, photos, prior=prior / prior.sum(), pred_ab=wild_ab)
    for row in rows:
        assert row["out_of_gamut"] == pytest.approx(0.5, abs=0.02)
        assert row["auc_raw"] < 0.6 and row["auc_rebal"] < 0.6  # AuC judges the raw ab, not the RGB


def test_summarize_mean_and_t_interval_per_method():
    rows = [
        {"method": "model", "image": "a.png", "psnr_db": 1.0, "ssim": 0.5},
        {"method": "model", "image": "b.png", "psnr_db": 2.0, "ssim": float("nan")},
        {"method": "model", "image": "c.png", "psnr_db": 3.0, "ssim": 0.7},
        {"method": "gray", "image": "a.png", "psnr_db": 4.0, "ssim": 0.9},
    ]
    model, gray = metrics.summarize(rows, by="method")
    assert model["method"] == "model" and model["n"] == 3
    # values 1, 2, 3: sample std 1, t(0.975, 2 dof) = 4.303 from the tables
    assert model["psnr_db"] == pytest.approx(2.0)
    assert model["psnr_db_ci95"] == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert model["ssim"] == pytest.approx(0.6)  # NaN left out
    assert gray["psnr_db"] == 4.0 and math.isnan(gray["psnr_db_ci95"])
    assert "auc_raw" not in model
    (everything,) = metrics.summarize(rows)
    assert everything["n"] == 4 and everything["psnr_db"] == pytest.approx(2.5)
    with pytest.raises(ColorkitError, match="summarize by"):
        metrics.summarize(rows, by="model")


# --- Video: CDC and warping error ---------------------------------------------------------


def uniform_frames(*values, size=4):
    """One frame per value: every pixel and channel at that 8-bit value (uint8 [T, size, size, 3])."""
    return np.stack([np.full((size, size, 3), value, np.uint8) for value in values])


def test_js_divergence_by_hand():
    assert metrics.js_divergence([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0.0)
    assert metrics.js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2))  # nothing in common
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4), KL(p||m) = ln(4/3) / 2, KL(q||m) = ln(4/3)
    assert metrics.js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.75 * math.log(4 / 3))


def test_cdc_of_steady_and_switching_clips():
    assert metrics.cdc(uniform_frames(90, 90, 90, 90, 90)) == 0.0
    assert metrics.cdc(uniform_frames(0, 255)) == pytest.approx(math.log(2))  # only the gap of 1 fits in two frames
    # black, black, white, white, white: gap 1 switches once in 4 pairs, gap 2 twice in 3, gap 4 once in 1
    expected = math.log(2) * (1 / 4 + 2 / 3 + 1 / 1) / 3
    assert metrics.cdc(uniform_frames(0, 0, 255, 255, 255)) == pytest.approx(expected)
    # gaps longer than the clip are left out: three frames use gaps 1 and 2
    assert metrics.cdc(uniform_frames(0, 255, 255)) == pytest.approx(math.log(2) * (1 / 2 + 1) / 2)


def test_cdc_averages_the_three_channels_and_reads_floats_as_saved():
    frames = uniform_frames(40, 40)
    frames[1, ..., 0] = 200  # only red changes
    assert metrics.cdc(frames) == pytest.approx(math.log(2) / 3)
    half = np.zeros((2, 4, 4, 3), np.uint8)
    half[1, :2] = 255  # half the pixels turn white: JS((1, 0), (1/2, 1/2)) in each channel
    assert metrics.cdc(half) == pytest.approx(0.75 * math.log(4 / 3))
    assert metrics.cdc(frames / 255.0) == pytest.approx(metrics.cdc(frames))
    histograms = metrics.color_histograms(frames)
    assert histograms.shape == (2, 3, 256) and np.allclose(histograms.sum(axis=-1), 1.0)
    with pytest.raises(ColorkitError, match="CDC needs"):
        metrics.cdc(frames[:1])


def test_warp_errors_by_hand(rng):
    still = np.zeros((1, 6, 8, 2), np.float32)
    first = rng.random((6, 8, 3)).astype(np.float32)
    brighter = np.stack([first, first + 0.1])
    everywhere = np.ones((1, 6, 8), bool)
    # no motion, every channel 0.1 higher: 3 channels x 0.1**2
    assert metrics.warp_errors(brighter, still, everywhere) == pytest.approx([0.03])
    # the picture moves 2 pixels right; the flow of frame 1 points 2 pixels back into frame 0
    moved = np.stack([first, np.roll(first, 2, axis=1)])
    flow = np.zeros((1, 6, 8, 2), np.float32)
    flow[..., 0] = -2.0
    inside = np.ones((1, 6, 8), bool)
    inside[:, :, :2] = False  # those came from outside frame 0
    assert metrics.warp_errors(moved, flow, inside) == pytest.approx([0.0], abs=1e-6)
    # one pixel of frame 1 changes colour by 0.5 in red: counted when valid, not when masked out
    moved[1, 3, 4, 0] += 0.5
    assert metrics.warp_errors(moved, flow, inside) == pytest.approx([0.25 / inside.sum()])
    inside[0, 3, 4] = False
    assert metrics.warp_errors(moved, flow, inside) == pytest.approx([0.0], abs=1e-6)
    assert np.isnan(metrics.warp_errors(moved, flow, np.zeros_like(inside))[0])


def test_warp_error_finds_the_motion_in_the_reference_clip(rng):
    texture = np.kron(0.7 * rng.random((8, 10, 3)), np.ones((6, 6, 1))).astype(np.float32)  # 48 x 60 blocks
    clip = np.stack([np.roll(texture, 2 * t, axis=1) for t in range(4)])  # 2 pixels right per frame
    assert metrics.warp_error(clip) < 1e-3  # the flow explains every frame from the last
    tinted = clip.copy()
    tinted[1::2, ..., 2] += 0.2  # blue flickers on odd frames: every pair differs by 0.2 in blue
    flickering = metrics.warp_error(tinted, reference=clip)
    assert flickering == pytest.approx(0.2**2, rel=0.1)
    assert metrics.warp_error(tinted, reference=color.rgb_to_lab(clip)[..., 0]) == pytest.approx(flickering, rel=0.1)

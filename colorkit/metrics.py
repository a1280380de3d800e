"""Colorization metrics: the ones the course reports use, each defined precisely.

Conventions
-----------
- RGB images are floats in [0, 1]: one image ``[H, W, 3]`` or a batch
  ``[N, H, W, 3]`` (numpy arrays or tensors). ab arrays are in Lab units,
  shape ``[..., 2]``; L is in [0, 100].
- A *per-image* function returns one value per image: a float for one image,
  a numpy array ``[N]`` for a batch. ``psnr`` and ``ssim`` return the mean of
  their per-image values, which is how Zhang's group reports them.
- Metrics that judge the picture a viewer sees (PSNR's standard convention,
  SSIM, colourfulness) look at it as it would be saved: clipped to [0, 1] and
  rounded to 8-bit values. The reports' own formulas (PSNR's ``"report"``
  convention, the RGB difference) use the values as given.

``evaluate_images`` computes the per-image table the ``evaluate`` command writes,
``summarize`` turns it into a mean and a 95% confidence interval per method, and
``gray_baseline`` / ``random_baseline`` are the two reference methods of Zhang
et al.'s Table 1. The last section scores how steady a clip's colours are:
``cdc`` (colour distribution consistency) and ``warp_error``.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy import stats

from colorkit import color
from colorkit.errors import ColorkitError

#: Peak value of an 8-bit channel: the MAX of PSNR.
PEAK_8BIT = 255.0
#: How much higher PSNR reads when MAX = 255 is applied to [0, 1] data instead of
#: to 0-255 values: 10*log10(255**2) = 20*log10(255), about 48.13 dB.
PSNR_REPORT_OFFSET_DB = 20.0 * math.log10(PEAK_8BIT)
#: Identical images have zero error and an infinite PSNR; an infinite value would
#: make every mean infinite, so per-image PSNR is capped here (standard
#: convention; the report convention is capped 48.13 dB higher, keeping the two
#: exactly PSNR_REPORT_OFFSET_DB apart).
PSNR_CAP_DB = 100.0
PSNR_CONVENTIONS = ("standard", "report")

#: SSIM settings of Wang et al. 2004, as tf.image.ssim and skimage implement them.
SSIM_FILTER_SIZE = 11
SSIM_SIGMA = 1.5

#: Zhang et al. sweep the ab error threshold over 0..150 in steps of 1.
AUC_THRESHOLDS = np.arange(0.0, 151.0)

#: A pixel is out of gamut when a channel leaves [0, 1] by more than half an
#: 8-bit step: float error on in-gamut colours never reaches that, and a colour
#: that far out would visibly change when clipped.
OUT_OF_GAMUT_TOLERANCE = 0.5 / PEAK_8BIT

#: The per-image columns of ``evaluate_images`` (and the ``evaluate`` command).
METRIC_COLUMNS = ("psnr_db", "ssim", "auc_raw", "auc_rebal", "colorfulness", "out_of_gamut")

#: VGG16's input size (ImageNet weights were trained at 224 x 224).
VGG16_SIZE = 224


# --- Shapes ----------------------------------------------------------------------------


def _image_batch(images, name: str = "image") -> tuple[np.ndarray, bool]:
    """``[H, W, 3]`` or ``[N, H, W, 3]`` -> (float64 ``[N, H, W, 3]``, was it one image)."""
    array = np.asarray(images, dtype=np.float64)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ColorkitError(f"{name} must be RGB of shape [H, W, 3] or [N, H, W, 3]; got shape {array.shape}")
    single = array.ndim == 3
    return (array[None] if single else array), single


def _image_pair(pred_rgb, true_rgb) -> tuple[np.ndarray, np.ndarray, bool]:
    """Prediction and ground truth as matching float64 batches."""
    pred, single = _image_batch(pred_rgb, "the prediction")
    true, _ = _image_batch(true_rgb, "the ground truth")
    if pred.shape != true.shape:
        raise ColorkitError(f"prediction and ground truth must have the same shape; got {pred.shape} and {true.shape}")
    return pred, true, single


def _ab_pair(pred_ab, true_ab) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred_ab, np.float64), np.asarray(true_ab, np.float64)
    if pred.shape != true.shape or pred.shape[-1:] != (2,):
        raise ColorkitError(
            f"predicted and true ab must have the same shape [..., 2]; got {pred.shape} and {true.shape}"
        )
    return pred, true


def _per_image(values: np.ndarray, single: bool):
    """A float for one image, an array for a batch (see module docstring)."""
    return float(values[0]) if single else values


def to_8bit_values(rgb) -> np.ndarray:
    """RGB in [0, 1] -> the 0-255 integer values a saved 8-bit image holds (as float).

    Rounds to nearest, ties to even, as ``skimage.util.img_as_ubyte`` does."""
    return np.round(np.clip(np.asarray(rgb, np.float64), 0.0, 1.0) * PEAK_8BIT)


# --- PSNR and SSIM ----------------------------------------------------------------------


def psnr_per_image(pred_rgb, true_rgb, convention: str = "standard"):
    """Peak signal-to-noise ratio of each image, in dB: ``10 log10(255**2 / MSE)``.

    ``"standard"``: the MSE is taken over the 8-bit values (0-255) of the images
    as saved, so MAX = 255 matches the data. This is the usual definition and
    how Zhang's group computes it.

    ``"report"``: MAX = 255 with the MSE over the [0, 1] values as given, the
    2023 ResNet report's mistake. Since the MSE is then 255**2 times smaller,
    the result is exactly ``PSNR_REPORT_OFFSET_DB`` (48.13 dB) higher than the
    standard value for images already on the 8-bit grid; for other images the
    standard convention's rounding moves it by a few hundredths of a dB. That
    offset is why the report's average reads 69.5 dB: about 21.4 dB standard.

    Identical images are capped at ``PSNR_CAP_DB`` (plus the offset for
    ``"report"``) instead of infinity.
    """
    pred, true, single = _image_pair(pred_rgb, true_rgb)
    if convention == "standard":
        pred, true, cap = to_8bit_values(pred), to_8bit_values(true), PSNR_CAP_DB
    elif convention == "report":
        cap = PSNR_CAP_DB + PSNR_REPORT_OFFSET_DB
    else:
        raise ColorkitError(f"unknown PSNR convention {convention!r}; use one of {PSNR_CONVENTIONS}")
    mse = np.mean((pred - true) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        decibels = 10.0 * np.log10(PEAK_8BIT**2 / mse)
    return _per_image(np.minimum(decibels, cap), single)


def psnr(pred_rgb, true_rgb, convention: str = "standard") -> float:
    """Mean of the per-image PSNR values (see ``psnr_per_image`` for the conventions)."""
    return float(np.mean(psnr_per_image(pred_rgb, true_rgb, convention)))


def ssim_per_image(pred_rgb, true_rgb):
    """Structural similarity of each image (1 = identical), with ``tf.image.ssim``.

    Settings of Wang et al. 2004: an 11 x 11 Gaussian window of sigma 1.5,
    K1 = 0.01, K2 = 0.03, computed on the 8-bit values with data range 255,
    averaged over the window positions that fit inside the image and over the
    three channels. ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255, channel_axis=-1`` gives the same numbers.
    """
    pred, true, single = _image_pair(pred_rgb, true_rgb)
    if min(pred.shape[1:3]) < SSIM_FILTER_SIZE:
        size = f"{SSIM_FILTER_SIZE} x {SSIM_FILTER_SIZE}"
        raise ColorkitError(f"SSIM needs images of at least {size} pixels; got {pred.shape[1:3]}")
    values = tf.image.ssim(
        tf.constant(to_8bit_values(pred), tf.float32),
        tf.constant(to_8bit_values(true), tf.float32),
        max_val=PEAK_8BIT,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_SIGMA,
        k1=0.01,
        k2=0.03,
    )
    return _per_image(values.numpy().astype(np.float64), single)


def ssim(pred_rgb, true_rgb) -> float:
    """Mean of the per-image SSIM values."""
    return float(np.mean(ssim_per_image(pred_rgb, true_rgb)))


# --- Zhang et al.'s AuC ------------------------------------------------------------------


def auc(pred_ab, true_ab, thresholds=None, weights=None) -> float:
    """Zhang et al.'s raw accuracy: area under the cumulative ab-error curve, in [0, 1].

    For each threshold t (default 0, 1, ..., 150), take the share of pixels whose
    ab error ``||pred_ab - true_ab||_2`` is at most t; integrate that curve over
    the thresholds with the trapezoid rule and divide by the threshold range.
    A perfect prediction scores 1 (every pixel is within t = 0); a pixel off by
    more than 150 counts for nothing. All pixels of the input are pooled.

    ``weights`` (one per pixel, shape ``pred_ab.shape[:-1]``) turns the shares
    into weighted shares; ``auc_rebalanced`` uses that for the rebalanced AuC.
    """
    pred, true = _ab_pair(pred_ab, true_ab)
    thresholds = AUC_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
    if thresholds.ndim != 1 or len(thresholds) < 2 or np.any(np.diff(thresholds) <= 0):
        raise ColorkitError("AuC thresholds must be at least two increasing values, such as 0, 1, ..., 150")
    errors = np.linalg.norm(pred - true, axis=-1)
    weights = np.ones_like(errors) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != errors.shape or np.any(weights < 0) or weights.sum() <= 0:
        raise ColorkitError(f"AuC weights must be non-negative, not all zero, one per pixel (shape {errors.shape})")
    order = np.argsort(errors, axis=None)
    cumulative = np.concatenate([[0.0], np.cumsum(weights.ravel()[order])])
    within = cumulative[np.searchsorted(errors.ravel()[order], thresholds, side="right")] / cumulative[-1]
    return float(np.trapezoid(within, thresholds) / (thresholds[-1] - thresholds[0]))


def inverse_prior_weights(true_ab, prior, bins=None) -> np.ndarray:
    """One weight per pixel: 1 / prior of the ab bin its true colour falls in.

    Weighting by the inverse prior makes every colour bin count about as much
    as every other, so a method cannot score well by painting everything in
    the common desaturated colours. A bin the prior never saw (probability 0)
    gets the weight of the rarest bin it did see, not an infinite one.
    """
    from colorkit import quantize  # lazily: only the rebalanced AuC needs the bins

    bins = quantize.ab_bins() if bins is None else np.asarray(bins)
    prior = np.asarray(prior, np.float64)
    if prior.shape != (len(bins),) or not np.any(prior > 0):
        raise ColorkitError(
            f"the prior must hold one probability per ab bin ({len(bins)}), not all zero; "
            "compute it with colorkit.quantize.empirical_prior"
        )
    floored = np.maximum(prior, prior[prior > 0].min())
    return 1.0 / floored[quantize.nearest_bins(np.asarray(true_ab, np.float64), bins)]


def auc_rebalanced(pred_ab, true_ab, prior, bins=None, thresholds=None) -> float:
    """Zhang et al.'s class-rebalanced AuC: ``auc`` with each pixel weighted by
    the inverse prior of its ground-truth ab bin (see ``inverse_prior_weights``)."""
    return auc(pred_ab, true_ab, thresholds, weights=inverse_prior_weights(true_ab, prior, bins))


# --- The reports' other measures ---------------------------------------------------------


def rgb_difference(pred_rgb, true_rgb, absolute: bool = False):
    """The 2018 strided-CNN report's measure: per image, the sum over pixels of
    ``(O_R - P_R) + (O_G - P_G) + (O_B - P_B)`` (O original, P prediction), on
    the values given ([0, 1]; multiply by 255 for 8-bit units). Per-image.

    As written the sum is *signed*, so errors of opposite sign cancel: a
    prediction too red in one place and too green in another, or one with its
    red and blue channels swapped (R - B + B - R = 0), scores a perfect 0.
    ``absolute=True`` sums ``|O - P|`` instead, which is 0 only for a perfect
    prediction.
    """
    pred, true, single = _image_pair(pred_rgb, true_rgb)
    difference = true - pred
    if absolute:
        difference = np.abs(difference)
    return _per_image(difference.sum(axis=(1, 2, 3)), single)


def colorfulness(rgb):
    """Hasler and Suesstrunk's (2003) colourfulness of each image, on 8-bit values.

    With opponent channels rg = R - G and yb = (R + G) / 2 - B, the metric is
    ``sqrt(std_rg**2 + std_yb**2) + 0.3 * sqrt(mean_rg**2 + mean_yb**2)``
    (population standard deviations over the pixels). A gray image scores 0;
    the authors call about 33 "moderately" and above 59 "highly" colourful.
    Per-image.
    """
    images, single = _image_batch(rgb)
    values = to_8bit_values(images)
    red, green, blue = values[..., 0], values[..., 1], values[..., 2]
    rg, yb = red - green, 0.5 * (red + green) - blue
    spread = np.hypot(rg.std(axis=(1, 2)), yb.std(axis=(1, 2)))
    centre = np.hypot(rg.mean(axis=(1, 2)), yb.mean(axis=(1, 2)))
    return _per_image(spread + 0.3 * centre, single)


def out_of_gamut(ab_pred, l):
    """Share of pixels whose Lab colour (L with the predicted ab) lies outside sRGB.

    ``ab_pred`` is ``[H, W, 2]`` or ``[N, H, W, 2]`` in Lab units, before any
    clipping; ``l`` is L in [0, 100] with the same leading shape (a trailing
    channel of 1 is optional). A pixel counts when its unclipped RGB leaves
    [0, 1] by more than ``OUT_OF_GAMUT_TOLERANCE``. A regression network can
    predict any ab, so this shows how much of its output the display has to
    clip. Per-image.
    """
    ab = np.asarray(ab_pred, np.float64)
    lightness = np.asarray(l, np.float64)
    if lightness.shape == ab.shape[:-1]:
        lightness = lightness[..., None]
    if ab.ndim not in (3, 4) or ab.shape[-1] != 2 or lightness.shape != ab.shape[:-1] + (1,):
        raise ColorkitError(
            f"out_of_gamut needs ab [N, H, W, 2] and L [N, H, W, 1]; got {ab.shape} and {lightness.shape}"
        )
    single = ab.ndim == 3
    lab = np.concatenate([lightness, ab], axis=-1)
    rgb = color.lab_to_rgb(lab[None] if single else lab, clip=False)
    outside = np.any((rgb < -OUT_OF_GAMUT_TOLERANCE) | (rgb > 1.0 + OUT_OF_GAMUT_TOLERANCE), axis=-1)
    return _per_image(outside.mean(axis=(1, 2)), single)


#: ``flicker`` counts a pixel as still when its true ab moves less than this (Lab units).
FLICKER_STILL_TOLERANCE = 1.0


def flicker(pred_ab, true_ab, tolerance: float = FLICKER_STILL_TOLERANCE) -> float:
    """Temporal flicker of a video colorized frame by frame, in Lab units.

    ``pred_ab`` and ``true_ab`` are the frames' ab, ``[T, H, W, 2]`` (T >= 2).
    Between each pair of consecutive frames, the pixels whose *true* ab changes
    by less than ``tolerance`` (Euclidean) should keep their colour; the metric
    is the mean Euclidean change of the *predicted* ab over those pixels, pooled
    over all pairs. 0 means a steady colorization; a network whose output
    depends on noise (dropout left on) or on content elsewhere in the frame
    scores higher. NaN when no pixel stays still."""
    pred = np.asarray(pred_ab, np.float64)
    true = np.asarray(true_ab, np.float64)
    if pred.shape != true.shape or pred.ndim != 4 or pred.shape[-1] != 2 or pred.shape[0] < 2:
        raise ColorkitError(
            f"flicker needs predicted and true ab of the same shape [T, H, W, 2] with T >= 2; "
            f"got {pred.shape} and {true.shape}"
        )
    still = np.linalg.norm(np.diff(true, axis=0), axis=-1) < tolerance
    if not still.any():
        return math.nan
    return float(np.linalg.norm(np.diff(pred, axis=0), axis=-1)[still].mean())


# --- Semantic interpretability ------------------------------------------------------------


def _top1(classifier, images: np.ndarray, preprocess) -> np.ndarray:
    scores = classifier(preprocess(images.astype(np.float32)), training=False)
    return np.argmax(np.asarray(scores), axis=-1)


def semantic_interpretability(classifier, colorized_rgb, real_rgb, preprocess=None, batch_size: int = 32) -> float:
    """Share of images on which ``classifier`` gives the colorized version the same
    top-1 class as the real colour photo (Zhang et al.'s VGG test, without labels).

    Any Keras classifier works; ``preprocess`` maps an RGB batch in [0, 1] to
    what it expects (``vgg16_preprocess`` for ``vgg16_classifier``). A
    colorization that keeps objects recognisable scores close to 1.
    """
    colorized, real, _ = _image_pair(colorized_rgb, real_rgb)
    preprocess = preprocess or (lambda images: images)
    batches = [slice(i, i + batch_size) for i in range(0, len(real), batch_size)]
    agree = [_top1(classifier, colorized[b], preprocess) == _top1(classifier, real[b], preprocess) for b in batches]
    return float(np.mean(np.concatenate(agree)))


def vgg16_classifier(weights_path) -> keras.Model:
    """Keras' VGG16 ImageNet classifier with weights read from a local file.

    Nothing is downloaded: build the architecture with ``weights=None`` and load
    ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (Keras' release file),
    which the user copies onto the machine. Pair it with ``vgg16_preprocess``.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise ColorkitError(
            f"VGG16 weights not found at {path}; copy Keras' vgg16_weights_tf_dim_ordering_tf_kernels.h5 "
            "there from a machine with network access"
        )
    model = keras.applications.VGG16(weights=None)
    try:
        model.load_weights(path)
    except (OSError, ValueError) as error:
        raise ColorkitError(
            f"{path} could not be loaded as VGG16 weights; expected Keras' vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        ) from error
    return model


def vgg16_preprocess(rgb):
    """RGB batch in [0, 1], any size -> VGG16's input: 224 x 224, 0-255, BGR minus the ImageNet mean."""
    resized = tf.image.resize(rgb, (VGG16_SIZE, VGG16_SIZE)) * PEAK_8BIT
    return keras.applications.vgg16.preprocess_input(resized)


# --- Baselines ------------------------------------------------------------------------------


def gray_baseline(rgb) -> np.ndarray:
    """The image with its own L and a = b = 0: what 'no colour at all' scores."""
    return np.asarray(color.rgb_to_gray(np.asarray(rgb, np.float32)))


def _derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation in which no index maps to itself."""
    order = np.random.default_rng(seed).permutation(n)
    donors = np.empty(n, dtype=int)
    donors[order] = np.roll(order, 1)
    return donors


def random_baseline(rgb, seed: int = 0) -> np.ndarray:
    """Each image keeps its own L and takes the ab of *another* image of the batch.

    This is the 'Random' row of Zhang et al.'s Table 1 (colours copied from a
    random image): plausible, natural colour statistics placed without any
    understanding of the scene. Donors are a seeded derangement of the batch,
    so it needs at least two images and the same seed gives the same result.
    """
    images, _ = _image_batch(rgb)
    if len(images) < 2:
        raise ColorkitError("the random baseline needs a batch of at least two images: each takes another's colours")
    lab = color.rgb_to_lab(images.astype(np.float32))
    mixed = np.concatenate([lab[..., :1], lab[_derangement(len(images), seed), ..., 1:]], axis=-1)
    return color.lab_to_rgb(mixed)


# --- Tables ---------------------------------------------------------------------------------


def evaluate_images(pred_rgb, true_rgb, prior=None, pred_ab=None, bins=None) -> list[dict]:
    """One row per image with the columns of ``METRIC_COLUMNS``.

    PSNR (standard convention), SSIM and colourfulness judge the predicted RGB.
    AuC compares ab: the prediction's raw ``pred_ab`` when given (Lab units,
    ``[N, H, W, 2]``, what the network output before any clipping), else the
    ab of ``pred_rgb``. ``auc_rebal`` needs the training set's ``prior`` over
    the ab bins and is NaN without it. ``out_of_gamut`` needs ``pred_ab`` (with
    the true L, as inference joins them) and is NaN without it, because an RGB
    image that was already clipped is in gamut by construction.
    """
    pred, true, _ = _image_pair(pred_rgb, true_rgb)
    true_lab = color.rgb_to_lab(true)
    true_ab = true_lab[..., 1:]
    missing = np.full(len(true), np.nan)
    if pred_ab is None:
        pred_ab, gamut = color.rgb_to_lab(pred)[..., 1:], missing
    else:
        pred_ab, _ = _ab_pair(pred_ab, true_ab)
        gamut = out_of_gamut(pred_ab, true_lab[..., :1])
    if prior is None:
        auc_rebal = missing
    else:
        weights = inverse_prior_weights(true_ab, prior, bins)
        auc_rebal = [auc(pred_ab[i], true_ab[i], weights=weights[i]) for i in range(len(true))]
    columns = {
        "psnr_db": psnr_per_image(pred, true),
        "ssim": ssim_per_image(pred, true),
        "auc_raw": [auc(pred_ab[i], true_ab[i]) for i in range(len(true))],
        "auc_rebal": auc_rebal,
        "colorfulness": colorfulness(pred),
        "out_of_gamut": gamut,
    }
    return [dict(zip(columns, map(float, values))) for values in zip(*columns.values())]


def mean_and_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (mean +- half-width).

    Uses Student's t with n - 1 degrees of freedom and the sample standard
    deviation: test sets here are small (the ResNet report has 30 images),
    where the normal approximation would be too narrow. NaN values are left
    out; the half-width is NaN for fewer than two values.
    """
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan
    t = stats.t.ppf(0.975, len(values) - 1)
    return mean, float(t * values.std(ddof=1) / math.sqrt(len(values)))


def summarize(rows, by: str | None = None, columns=METRIC_COLUMNS) -> list[dict]:
    """Per group of ``by`` (e.g. ``"method"``), or over all rows: ``n``, then for
    each metric column its mean (named like the column) and ``<column>_ci95``,
    the half-width of the 95% confidence interval (see ``mean_and_ci95``)."""
    frame = pd.DataFrame(rows)
    if by is not None and by not in frame:
        raise ColorkitError(f"cannot summarize by {by!r}: the rows have columns {list(frame.columns)}")
    present = [column for column in columns if column in frame]
    groups = frame.groupby(by, sort=False) if by is not None else [(None, frame)]
    summary = []
    for key, group in groups:
        row = ({by: key} if by is not None else {}) | {"n": len(group)}
        for column in present:
            row[column], row[f"{column}_ci95"] = mean_and_ci95(group[column].to_numpy(np.float64))
        summary.append(row)
    return summary


# --- Video: how steady the colours are --------------------------------------------------

#: the frame distances CDC compares a frame with (t + 1, t + 2, t + 4)
CDC_GAPS = (1, 2, 4)


def _frame_values(frames, name: str = "frames") -> np.ndarray:
    """RGB frames ``[T, H, W, 3]`` (uint8, or float in [0, 1]) -> their 8-bit values as integers."""
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ColorkitError(f"{name} must be RGB frames of shape [T, H, W, 3]; got shape {array.shape}")
    return array.astype(np.int64) if array.dtype == np.uint8 else to_8bit_values(array).astype(np.int64)


def color_histograms(frames) -> np.ndarray:
    """Per frame and RGB channel, the share of pixels at each 8-bit value: ``[T, 3, 256]``."""
    values = _frame_values(frames)
    flat = values.reshape(len(values), -1, 3)
    counts = np.stack([[np.bincount(frame[:, c], minlength=256) for c in range(3)] for frame in flat])
    return counts / flat.shape[1]


def js_divergence(p, q) -> np.ndarray:
    """Jensen-Shannon divergence between distributions along the last axis, with
    natural logarithms: ``(KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``.
    0 for equal distributions, ln 2 (0.693) for ones with no value in common."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    middle = (p + q) / 2.0

    def kl_to_middle(r):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(np.where(r > 0, r * np.log(r / middle), 0.0), axis=-1)

    return (kl_to_middle(p) + kl_to_middle(q)) / 2.0


def cdc_from_histograms(histograms, gaps=CDC_GAPS) -> float:
    """``cdc`` from the frames' ``color_histograms`` (``[T, 3, 256]``), so that a
    long clip can be scored from its histograms alone."""
    histograms = np.asarray(histograms, np.float64)
    usable = [gap for gap in gaps if gap < len(histograms)]
    if histograms.ndim != 3 or not usable:
        raise ColorkitError(f"CDC needs per-frame channel histograms [T, C, bins] with T > {min(gaps)}; "
                            f"got shape {histograms.shape}")
    per_gap = [js_divergence(histograms[:-gap], histograms[gap:]).mean(axis=0) for gap in usable]  # [C] each
    return float(np.mean(per_gap))


def cdc(frames, gaps=CDC_GAPS) -> float:
    """Colour distribution consistency of a clip (lower is steadier; 0 for a
    clip whose colour histograms never change).

    For each RGB channel c, ``H_c(t)`` is frame t's histogram of 8-bit values
    (256 bins, as shares of the pixels). For each gap d in ``gaps`` the
    Jensen-Shannon divergence (``js_divergence``, natural log) between
    ``H_c(t)`` and ``H_c(t + d)`` is averaged over all t; CDC is the mean over
    the gaps and the three channels:
    ``CDC = 1/3 sum_c 1/|gaps| sum_d 1/(T - d) sum_t JS(H_c(t), H_c(t + d))``.

    This is the measure of Liu et al., "Temporally Consistent Video
    Colorization with Deep Feature Propagation and Self-regularization
    Learning" (TCVC, arXiv:2110.04562), with their gaps 1, 2 and 4, which the
    NTIRE 2023 Video Colorization Challenge (Kang et al., CVPR Workshops 2023)
    ranked its second track by. It sees flicker of the colour *distribution*
    only: moving content with steady colours scores low, and so does a gray
    clip. A gap as long as the clip or longer is left out.

    ``frames``: RGB ``[T, H, W, 3]``, uint8 or float in [0, 1] (scored as
    saved: clipped and rounded to 8 bits)."""
    return cdc_from_histograms(color_histograms(frames), gaps)


def warp_errors(frames, flows, valid) -> np.ndarray:
    """Lai et al.'s warping error of each pair of consecutive frames: ``[T - 1]``.

    For frames t - 1 and t (RGB in [0, 1]; uint8 is divided by 255), frame
    t - 1 is warped onto frame t by ``flows[t - 1]`` (``[H, W, 2]``, the
    backward flow of ``colorkit.video.flow``), and the error is
    ``sum_i M_i ||V_t(i) - warped(i)||^2 / sum_i M_i``: the squared RGB
    distance (summed over the channels), averaged over the pixels ``i`` where
    ``valid[t - 1]`` (``M``) says the flow holds. NaN for a pair with no valid pixel."""
    from colorkit.video.flow import warp

    frames = np.asarray(frames)
    frames = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else np.asarray(frames, np.float32)
    flows, valid = np.asarray(flows, np.float32), np.asarray(valid, bool)
    if frames.ndim != 4 or flows.shape != (len(frames) - 1, *frames.shape[1:3], 2) or valid.shape != flows.shape[:-1]:
        raise ColorkitError(f"warp_errors needs frames [T, H, W, C], flows [T - 1, H, W, 2] and valid [T - 1, H, W]; "
                            f"got {frames.shape}, {flows.shape} and {valid.shape}")
    errors = np.full(len(flows), np.nan)
    for t in range(1, len(frames)):
        mask = valid[t - 1]
        if mask.any():
            squared = np.sum((frames[t] - warp(frames[t - 1], flows[t - 1])) ** 2, axis=-1)
            errors[t - 1] = float(squared[mask].mean())
    return errors


def warp_error(frames, reference=None, flows=None, valid=None) -> float:
    """The warping error of Lai et al., "Learning Blind Video Temporal
    Consistency" (ECCV 2018): ``warp_errors`` averaged over the pairs of
    consecutive frames (pairs with no valid pixel left out). Lower is steadier.

    The motion comes from the *input* clip, as in the paper: give ``flows``
    and ``valid`` (e.g. a synthetic clip's true motion), or ``reference``, the
    input frames (RGB, or L in [0, 100] as ``[T, H, W]``; default ``frames``),
    from which OpenCV's DIS flow and the forward-backward occlusion check of
    ``colorkit.video.flow`` find them. Report it next to PSNR and
    colourfulness, never alone: a gray clip has hardly any warping error."""
    if flows is None:
        from colorkit.video.flow import trusted_flow

        reference = np.asarray(frames if reference is None else reference)
        pairs = [trusted_flow(reference[t], reference[t - 1]) for t in range(1, len(reference))]
        flows, valid = np.stack([flow for flow, _ in pairs]), np.stack([mask for _, mask in pairs])
    elif valid is None:
        valid = np.ones(np.shape(flows)[:-1], bool)
    errors = warp_errors(frames, flows, valid)
    return float(np.nanmean(errors)) if np.isfinite(errors).any() else math.nan

"""sRGB <-> CIELAB in TensorFlow ops, and the one place the model's normalisation lives.

The formulas are scikit-image's (sRGB companding, D65 white point, 2 degree
observer), so ``rgb_to_lab`` agrees with ``skimage.color.rgb2lab`` to about
1e-4 in float32. The way there: sRGB -> linear light -> XYZ relative to the
white point -> f() -> L, a, b; and back. Everything is element-wise TF ops,
so the functions take any leading shape (a pixel, an image, a batch) and run
inside ``tf.data`` maps, ``tf.function`` steps and Keras layers alike.

Where a step has a cheaper form (a pow for positive numbers, a cube root, a
table for 8-bit input, one memory layout per channel) the formula here calls
it by name from ``colorkit.color_fast``, which computes the same values.

Gradients: ``tf.where`` evaluates *both* branches and back-propagates through
both, so a ``pow`` or cube root applied to a value that only the other branch
should see still produces ``inf``/``nan`` gradients. Each non-linear branch
therefore clamps its argument into its own domain first (see ``_safe``).

Model conventions (DESIGN.md): the network sees ``L / 50 - 1`` in [-1, 1] and
regresses ``ab / 110``. Use ``normalize_l``/``normalize_ab`` and their inverses;
no other module hard-codes 50 or 110.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from colorkit import color_fast as fast

# --- CIE constants -----------------------------------------------------------

#: D65 reference white for the 2 degree observer (as skimage.color).
WHITE_D65 = (0.95047, 1.0, 1.08883)

#: Linear sRGB -> XYZ (rows: X, Y, Z), the matrix skimage uses.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)

_EPSILON = 0.008856  # (6/29)^3 rounded, CIE's linear/cube-root switch point
_KAPPA_SLOPE = 7.787  # slope of the linear part of f(t)
_F_OFFSET = 16.0 / 116.0
_F_SWITCH = 0.2068966  # f(_EPSILON): where the inverse switches branch

#: Linear sRGB -> XYZ already divided by the white point: its rows give the
#: t = X/Xn, Y/Yn, Z/Zn that f() takes, with no separate division.
_WHITE_XYZ_FROM_RGB = XYZ_FROM_RGB / np.array(WHITE_D65)[:, None]
#: The way back: white-relative XYZ -> linear sRGB, the white point folded into the matrix.
_RGB_FROM_WHITE_XYZ = RGB_FROM_XYZ * np.array(WHITE_D65)[None, :]

# --- Model normalisation (the only place these numbers live) ------------------

#: L in [0, 100] is fed to networks as L / L_HALF_RANGE - 1, i.e. in [-1, 1].
L_HALF_RANGE = 50.0
#: ab is regressed as ab / AB_RANGE; sRGB's gamut stays inside about +-110.
AB_RANGE = 110.0


def normalize_l(lightness):
    """L in [0, 100] -> network input in [-1, 1]."""
    return lightness / L_HALF_RANGE - 1.0


def denormalize_l(l_norm):
    """Network input in [-1, 1] -> L in [0, 100]."""
    return (l_norm + 1.0) * L_HALF_RANGE


def normalize_ab(ab):
    """ab in Lab units -> regression target of roughly [-1, 1]."""
    return ab / AB_RANGE


def denormalize_ab(ab_norm):
    """Regression output -> ab in Lab units."""
    return ab_norm * AB_RANGE


# --- Conversions ---------------------------------------------------------------


def _safe(x, lower):
    """Clamp ``x`` from below so the branch of ``tf.where`` that is *not* taken
    still has a finite value and gradient (pow of a negative number is nan)."""
    return tf.maximum(x, lower)


def _to_float_tensor(x):
    """Accept arrays, lists or tensors; integers are taken as 8-bit values."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_integer:
        return tf.cast(x, tf.float32) / 255.0
    if x.dtype not in (tf.float32, tf.float64):
        return tf.cast(x, tf.float32)
    return x


def _like_input(result, original):
    """Give numpy back to numpy callers (notebooks), tensors to TF callers."""
    return result.numpy() if isinstance(original, np.ndarray) else result


def srgb_to_linear(rgb):
    """sRGB values -> linear light (undo the companding). Monotone, so it maps the
    bounds of [0, 1] onto themselves: the gamut fit checks colours in linear light.

    8-bit input (uint8: photos as stored, the data pipeline's batches) reads
    the same formula from a table of its 256 values. Other integers are taken
    as 8-bit values."""
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        return fast.lookup_8bit(_LINEAR_FROM_8BIT, rgb)
    rgb = _to_float_tensor(rgb)
    gamma = fast.positive_pow((_safe(rgb, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(rgb > 0.04045, gamma, rgb / 12.92)


#: Linear light of each 8-bit sRGB value (``srgb_to_linear``'s table for uint8 input).
_LINEAR_FROM_8BIT = fast.table_8bit(srgb_to_linear)


def _linear_to_srgb(linear):
    """Linear light -> sRGB values (apply the companding): ``srgb_to_linear`` inverted."""
    gamma = 1.055 * fast.positive_pow(_safe(linear, 0.0031308), 1.0 / 2.4) - 0.055
    return tf.where(linear > 0.0031308, gamma, linear * 12.92)


def _lab_f(t, cube_root):
    """CIE's f(t): a cube root above ``_EPSILON``, a straight line below it."""
    root = cube_root(_safe(t, _EPSILON))
    return tf.where(t > _EPSILON, root, _KAPPA_SLOPE * t + _F_OFFSET)


def _lab_f_inverse(f):
    """The inverse of ``_lab_f``: a cube above ``_F_SWITCH``, the line inverted below."""
    cube = f * f * f  # two multiplications: cheaper than a pow, and exact for negative f
    return tf.where(f > _F_SWITCH, cube, (f - _F_OFFSET) / _KAPPA_SLOPE)


def _linear_planes(rgb):
    """sRGB ``[..., 3]`` -> linear light as flat planes ``[3, N]``: the first step of ``_lab_planes``."""
    return srgb_to_linear(fast.channel_planes(rgb))


def _lab_planes(rgb, cube_root):
    """sRGB ``[..., 3]`` -> the flat planes ``(L, a, b)`` (``[N]`` each).

    Four steps: linear light, white-relative XYZ (three weighted sums), f()
    and CIE's definition L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz).
    ``cube_root`` is f()'s cube root (``fast.exp_log_cube_root`` op by op,
    ``fast.halley_cube_root`` compiled)."""
    return _lab_from_linear(_linear_planes(rgb), cube_root)


def _lab_from_linear(linear, cube_root):
    """Linear-light planes ``[3, N]`` -> ``(L, a, b)``: the steps of ``_lab_planes`` after the first."""
    red, green, blue = tf.unstack(linear)
    rows = _WHITE_XYZ_FROM_RGB.tolist()
    fx, fy, fz = (_lab_f(w_r * red + w_g * green + w_b * blue, cube_root) for w_r, w_g, w_b in rows)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (shape ``[..., 3]``) -> CIELAB (L in [0, 100], a/b in about
    [-110, 110]). Integer input is taken as 8-bit values. Works on any leading shape."""
    planes = tf.stack(_lab_planes(rgb, fast.exp_log_cube_root))
    return _like_input(fast.interleaved(planes, tf.shape(rgb)), rgb)


def _matmul_last(x, matrix):
    """Apply a 3x3 colour matrix over the last axis of any-rank ``x``."""
    m = tf.constant(matrix.T, dtype=x.dtype)
    return tf.tensordot(x, m, axes=[[-1], [0]])


def lab_to_linear_rgb(lab):
    """CIELAB (``[..., 3]``) -> linear-light sRGB, unclipped and not yet companded.

    A colour is displayable exactly when all three values lie in [0, 1], so gamut
    checks stop here: that skips the companding pow, most of the cost."""
    x = _to_float_tensor(lab)
    lightness, a, b = tf.unstack(x, axis=-1)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = tf.maximum(fy - b / 200.0, 0.0)  # skimage clamps negative z the same way
    return _matmul_last(_lab_f_inverse(tf.stack([fx, fy, fz], axis=-1)), _RGB_FROM_WHITE_XYZ)


def lab_to_rgb(lab, clip=True):
    """CIELAB (``[..., 3]``) -> sRGB in [0, 1]. Colours outside the sRGB gamut are
    clipped, as skimage's ``lab2rgb`` does; pass ``clip=False`` to see them (the
    out-of-gamut metric does)."""
    rgb = _linear_to_srgb(lab_to_linear_rgb(lab))
    if clip:
        rgb = tf.clip_by_value(rgb, 0.0, 1.0)
    return _like_input(rgb, lab)


# --- The sRGB gamut ---------------------------------------------------------------------------

#: bisection steps of the gamut fit: the scale of ab is found to 2**-12, i.e. chroma to
#: within 0.04 of 150 (an 8-bit sRGB step is about 10 times that)
GAMUT_STEPS = 12
#: how far outside [0, 1] an RGB channel may stray (float32 rounding) and still count as inside
GAMUT_TOLERANCE = 1e-4


def _linear_bounds(tolerance: float = GAMUT_TOLERANCE / 2) -> tuple[float, float]:
    """sRGB's [-tolerance, 1 + tolerance] in linear light, where the gamut is checked.

    Half of ``GAMUT_TOLERANCE``: companding a colour that sits right on the
    bound moves it by float32 rounding, and the promise is made in sRGB."""
    low, high = srgb_to_linear(tf.constant([-tolerance, 1.0 + tolerance])).numpy()
    return float(low), float(high)


_LINEAR_LOW, _LINEAR_HIGH = _linear_bounds()


def _inside(lab):
    """Which Lab pixels ([N, 3]) have an sRGB colour: their linear RGB is within bounds."""
    linear = lab_to_linear_rgb(lab)
    return tf.reduce_all((linear >= _LINEAR_LOW) & (linear <= _LINEAR_HIGH), axis=-1)


def in_gamut(lab: np.ndarray) -> np.ndarray:
    """Which Lab pixels (any leading shape, last axis L, a, b) have an sRGB colour."""
    return _inside(tf.constant(lab, tf.float32)).numpy()


def _with_ab_scaled(lab, factor):
    return tf.concat([lab[:, :1], lab[:, 1:] * factor[:, None]], axis=-1)


#: pixels in one call of a compiled per-pixel step, and in the last, short one when its pixels
#: fit (a chunk is padded up to one of the two): two compiled programs per step, little padding
CHUNK_PIXELS, SHORT_CHUNK_PIXELS = 1 << 16, 1 << 12


def per_pixel(step, pixels: np.ndarray):
    """``step`` (an XLA-compiled function of ``[N, C]`` pixels, giving one array or a
    tuple of them) over ``pixels`` of any length, ``CHUNK_PIXELS`` at a time:
    two input shapes in all, so XLA compiles it at most twice whatever the image size."""
    results = None
    for start in range(0, len(pixels), CHUNK_PIXELS):
        chunk = pixels[start : start + CHUNK_PIXELS]
        count = len(chunk)
        padded = SHORT_CHUNK_PIXELS if count <= SHORT_CHUNK_PIXELS else CHUNK_PIXELS
        if count < padded:
            chunk = np.concatenate([chunk, np.zeros((padded - count, *chunk.shape[1:]), chunk.dtype)])
        values = [value.numpy()[:count] for value in tf.nest.flatten(step(chunk))]
        if results is None:
            results = [np.empty((len(pixels), *value.shape[1:]), value.dtype) for value in values]
        for result, value in zip(results, values):
            result[start : start + count] = value
    return results[0] if len(results) == 1 else tuple(results)


@tf.function(jit_compile=True)
def _largest_inside_factors(pixels):
    """Per pixel, the largest factor in [0, 1] (to 2**-GAMUT_STEPS) whose scaled ab
    stays inside the gamut, by bisection. It always keeps an inside factor,
    starting from 0 (gray, inside at any L). Compiled with XLA, which fuses
    the steps into a few passes (``per_pixel`` feeds it fixed-size chunks)."""
    low = tf.zeros_like(pixels[:, 0])
    high = tf.ones_like(low)
    for _ in range(GAMUT_STEPS):
        middle = (low + high) / 2
        inside = _inside(_with_ab_scaled(pixels, middle))
        low, high = tf.where(inside, middle, low), tf.where(inside, high, middle)
    return low


def shrink_into_gamut(lab) -> np.ndarray:
    """Lab whose every pixel lies inside sRGB, with L untouched.

    Why not clip RGB: clipping changes lightness, and the output must keep the
    input's L. Instead each pixel's ab is multiplied by the largest factor in
    [0, 1] that keeps (L, factor * ab) displayable: 1 for pixels already
    inside, else found by ``_largest_inside_factors``. The checks run in linear
    light (no companding pow), so each step costs less than a Lab -> RGB
    conversion of the pixels outside."""
    lab = np.asarray(lab, np.float32)
    flat = lab.reshape(-1, 3)
    outside = ~in_gamut(flat)
    if not outside.any():
        return lab
    pixels = flat[outside]
    fitted = flat.copy()
    fitted[outside] = _with_ab_scaled(pixels, per_pixel(_largest_inside_factors, pixels)).numpy()
    return fitted.reshape(lab.shape)


def lab_to_rgb_in_gamut(lab) -> np.ndarray:
    """sRGB in [0, 1] of ``lab`` after ``shrink_into_gamut`` (the final clip only
    removes float32 rounding)."""
    return np.clip(lab_to_rgb(shrink_into_gamut(lab), clip=False), 0.0, 1.0)


def to_8bit(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded (not truncated: truncation darkens by half a step)."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


# --- What the network sees ------------------------------------------------------


def rgb_to_model_io(rgb):
    """RGB in [0, 1] (or uint8) -> ``(L / 50 - 1, ab / 110)``: a network's input and target."""
    rgb = tf.convert_to_tensor(rgb)
    return _model_io(_linear_planes(rgb), tf.shape(rgb)[:-1], fast.exp_log_cube_root)


def rgb_to_model_io_xla(rgb):
    """``rgb_to_model_io`` compiled with XLA, for whole batches: the data
    pipeline's Lab step. XLA fuses the element-wise steps into a few passes
    over the batch; compiled, the cube root is ``fast.halley_cube_root``.
    Values agree with ``rgb_to_model_io`` to float32 rounding (~1e-6).

    Two compiled calls, split after linear light: compiled as one, XLA fuses
    the 8-bit table lookup into each of the three weighted sums that read its
    result and does it three times per pixel (measured on a batch of 16
    images of 256 px: the split gives twice the images per second)."""
    rgb = tf.convert_to_tensor(rgb)
    return _model_io_from_linear_xla(_linear_planes_xla(rgb), tf.shape(rgb)[:-1])


@tf.function(jit_compile=True)
def _linear_planes_xla(rgb):
    """``_linear_planes`` compiled: the first of ``rgb_to_model_io_xla``'s two calls."""
    return _linear_planes(rgb)


@tf.function(jit_compile=True)
def _model_io_from_linear_xla(linear, leading):
    """``_model_io`` compiled: the second of ``rgb_to_model_io_xla``'s two calls."""
    return _model_io(linear, leading, fast.halley_cube_root)


def _model_io(linear, leading, cube_root):
    """``(L / 50 - 1 [..., 1], ab / 110 [..., 2])`` of the pixels whose linear
    light is ``linear`` (``[3, N]``, from ``_linear_planes``); ``leading``: their shape without the channels."""
    lightness, a, b = _lab_from_linear(linear, cube_root)
    l_norm = tf.reshape(normalize_l(lightness), tf.concat([leading, [1]], axis=0))
    ab_norm = fast.interleaved(normalize_ab(tf.stack([a, b])), tf.concat([leading, [2]], axis=0))
    return l_norm, ab_norm


def model_io_to_rgb(l_norm, ab_norm, clip=True):
    """Inverse of ``rgb_to_model_io``: join normalised L and ab back into RGB."""
    lab = tf.concat([denormalize_l(l_norm), denormalize_ab(ab_norm)], axis=-1)
    return lab_to_rgb(lab, clip=clip)


def rgb_to_gray(rgb):
    """The colourless version of an RGB image: its own L with a = b = 0, as RGB.
    This is the 'gray baseline' every report compares against."""
    lab = rgb_to_lab(tf.convert_to_tensor(rgb))
    gray_lab = tf.concat([lab[..., :1], tf.zeros_like(lab[..., 1:])], axis=-1)
    return _like_input(lab_to_rgb(gray_lab), rgb)


# --- Keras layers (so a model can take RGB and convert on the accelerator) ----


@keras.saving.register_keras_serializable(package="colorkit")
class RGBToLab(keras.layers.Layer):
    """Keras layer wrapping ``rgb_to_lab``: lets the conversion run inside a
    model (on the GPU, as the first step of a train step) instead of in Python."""

    def call(self, rgb):
        return rgb_to_lab(rgb)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="colorkit")
class LabToRGB(keras.layers.Layer):
    """Keras layer wrapping ``lab_to_rgb`` (clipped to the sRGB gamut)."""

    def call(self, lab):
        return lab_to_rgb(lab)

    def compute_output_shape(self, input_shape):
        return input_shape

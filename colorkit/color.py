"""sRGB <-> CIELAB in TensorFlow ops, and the one place the model's normalisation lives.

The formulas are the ones scikit-image uses (sRGB companding, D65 white point,
2 degree observer), so ``rgb_to_lab`` agrees with ``skimage.color.rgb2lab`` to
about 1e-4 in float32. Everything is written with element-wise TF ops, so the
functions take any leading shape (a pixel, an image, a batch) and run inside
``tf.data`` maps, ``tf.function`` steps and Keras layers alike.

Gradients: ``tf.where`` evaluates *both* branches and back-propagates through
both, so a ``pow`` or cube root applied to a value that only the other branch
should see still produces ``inf``/``nan`` gradients. Each non-linear branch
therefore clamps its argument into its own domain first (see ``_safe``).

Model conventions (DESIGN.md): the network sees ``L / 50 - 1`` in [-1, 1] and
regresses ``ab / 110``. Use ``normalize_l``/``normalize_ab`` and their inverses;
no other module hard-codes 50 or 110.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

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


def _matmul_last(x, matrix):
    """Apply a 3x3 colour matrix over the last axis of any-rank ``x``."""
    m = tf.constant(matrix.T, dtype=x.dtype)
    return tf.tensordot(x, m, axes=[[-1], [0]])


def _positive_pow(x, exponent):
    """``x ** exponent`` for ``x > 0``, as ``exp(exponent * log(x))``.

    Why not ``tf.pow``: with a fractional exponent it costs about three times
    as much on the CPU (it also handles negative bases, zero and integer
    exponents, none of which occur here), and the pows are most of the cost of
    a Lab conversion. Every caller clamps ``x`` into its positive branch first
    (``_safe``), so this equals ``tf.pow`` up to float32 rounding (~1e-7).
    Under XLA the cube root has a cheaper form (``_halley_cube_root``)."""
    return tf.exp(exponent * tf.math.log(x))


def srgb_to_linear(rgb):
    """sRGB values -> linear light (undo the companding). Monotone, so it maps the
    bounds of [0, 1] onto themselves: the gamut fit checks colours in linear light.

    8-bit input (uint8: photos as stored, the data pipeline's batches) takes
    the 256-entry table ``_LINEAR_FROM_8BIT`` instead of the pow: exact (the
    table is computed in float64), and a lookup costs a fifth of the pow under
    XLA and a third less op by op. Other integers are taken as 8-bit values."""
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        return tf.gather(_LINEAR_FROM_8BIT, tf.cast(rgb, tf.int32))
    rgb = _to_float_tensor(rgb)
    gamma = _positive_pow((_safe(rgb, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(rgb > 0.04045, gamma, rgb / 12.92)


def _linear_to_srgb(linear):
    gamma = 1.055 * _positive_pow(_safe(linear, 0.0031308), 1.0 / 2.4) - 0.055
    return tf.where(linear > 0.0031308, gamma, linear * 12.92)


def _exp_log_cube_root(t):
    """Cube root of ``t > 0`` in three element-wise ops: the right choice op by op."""
    return _positive_pow(t, 1.0 / 3.0)


def _halley_cube_root(t):
    """Cube root of ``t > 0`` by arithmetic alone, for XLA-compiled code.

    A first guess from the float's bit pattern (its exponent divided by 3, off
    by at most ~3%), then two steps of Halley's method, each of which triples
    the number of correct digits (3% -> 1e-5 -> float32 rounding). Compiled,
    these multiplications and one division per step fuse into the surrounding
    pass and cost about half of XLA's exp and log; run op by op they are a
    dozen kernels instead of three, about 4x dearer, hence two cube roots."""
    bits = tf.cast(tf.bitcast(tf.cast(t, tf.float32), tf.int32), tf.float32)
    guess = tf.bitcast(tf.cast(bits / 3.0 + _ONE_BITS * 2.0 / 3.0, tf.int32), tf.float32)
    root = tf.cast(guess, t.dtype)
    for _ in range(2):
        cube = root * root * root
        root = root * (cube + 2.0 * t) / (2.0 * cube + t)
    return root


#: The bit pattern of float32 1.0 as a number: in ``_halley_cube_root``'s guess,
#: a float's bits read as an integer are roughly a scaled, offset log2 of it.
_ONE_BITS = float(np.array(1.0, np.float32).view(np.int32))


def _lab_f(t, cube_root):
    root = cube_root(_safe(t, _EPSILON))
    return tf.where(t > _EPSILON, root, _KAPPA_SLOPE * t + _F_OFFSET)


def _lab_f_inverse(f):
    cube = f * f * f  # two multiplications: cheaper than a pow, and exact for negative f
    return tf.where(f > _F_SWITCH, cube, (f - _F_OFFSET) / _KAPPA_SLOPE)


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


#: Linear light of each 8-bit sRGB value (``srgb_to_linear``'s table for uint8 input).
_LINEAR_FROM_8BIT = srgb_to_linear(np.arange(256) / 255.0).numpy().astype(np.float32)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (shape ``[..., 3]``) -> CIELAB (L in [0, 100], a/b in about
    [-110, 110]). Integer input is taken as 8-bit values. Works on any leading shape.

    Computed on colour planes (see ``_lab_planes``) and interleaved again at the end."""
    planes = tf.stack(_lab_planes(rgb, _exp_log_cube_root))
    return _like_input(tf.reshape(tf.transpose(planes), tf.shape(rgb)), rgb)


def _channel_planes(pixels):
    """``[..., 3]`` -> ``[3, N]``: one flat plane per channel, each contiguous.

    Why: in ``[..., 3]`` a channel's values lie 3 apart in memory, so every
    element-wise step on one channel reads strided data that neither XLA nor
    the op-by-op kernels vectorise well. One transposing copy up front (of
    8-bit values, in the pipeline) makes each later pass a contiguous one:
    the Lab step takes 0.75x the time op by op, and 0.67x under XLA on 8-bit
    batches (on float ones its exp/log linearising dominates either way)."""
    return tf.transpose(tf.reshape(pixels, [-1, 3]))


def _lab_planes(rgb, cube_root):
    """sRGB ``[..., 3]`` -> the flat planes ``(L, a, b)``, with the cube root given
    (exp/log op by op, ``_halley_cube_root`` under XLA).

    Four steps: linearise (a pow, or a table lookup for uint8), white-relative
    XYZ (three weighted sums), f() (a cube root) and CIE's definition
    L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz)."""
    red, green, blue = tf.unstack(srgb_to_linear(_channel_planes(rgb)))
    rows = _WHITE_XYZ_FROM_RGB.tolist()
    fx, fy, fz = (_lab_f(w_r * red + w_g * green + w_b * blue, cube_root) for w_r, w_g, w_b in rows)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


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


def rgb_to_model_io(rgb):
    """RGB in [0, 1] (or uint8) -> ``(L / 50 - 1, ab / 110)``: a network's input and target."""
    return _model_io(tf.convert_to_tensor(rgb), _exp_log_cube_root)


@tf.function(jit_compile=True)
def rgb_to_model_io_xla(rgb):
    """``rgb_to_model_io`` compiled with XLA, for whole batches: the data pipeline's
    Lab step, its largest CPU cost after decoding (bench/ items 1 and 2).

    XLA fuses the element-wise steps into a few passes over the batch, about 3x
    less CPU than the same ops one by one. Compiled, the cube root is taken by
    ``_halley_cube_root`` (another ~20% less); values agree with
    ``rgb_to_model_io`` to float32 rounding (~1e-6)."""
    return _model_io(rgb, _halley_cube_root)


def _model_io(rgb, cube_root):
    """``(L / 50 - 1 [..., 1], ab / 110 [..., 2])`` from the Lab planes of ``rgb``."""
    lightness, a, b = _lab_planes(rgb, cube_root)
    leading = tf.shape(rgb)[:-1]
    l_norm = tf.reshape(normalize_l(lightness), tf.concat([leading, [1]], axis=0))
    ab_norm = tf.reshape(tf.transpose(normalize_ab(tf.stack([a, b]))), tf.concat([leading, [2]], axis=0))
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

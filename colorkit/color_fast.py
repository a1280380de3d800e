"""Faster ways to compute the steps of ``colorkit.color``'s formulas.

``color.py`` writes the colour science as scikit-image's formulas and calls
these where a step has a cheaper form. Each function computes exactly what its
name says (to float32 rounding), so a reader of ``color.py`` can skip this
file; the tests hold each one to its plain counterpart.

* ``positive_pow``: ``x ** p`` for positive ``x`` only, as ``exp(p * log(x))``;
  ``tf.pow`` also handles negative bases, zero and integer exponents.
* ``exp_log_cube_root`` (op by op) and ``halley_cube_root`` (under XLA, where
  plain arithmetic fuses into the surrounding pass).
* ``table_8bit`` / ``lookup_8bit``: a function of 8-bit values computed once
  for all 256 of them, then looked up, instead of computed per pixel.
* ``channel_planes`` / ``interleaved``: ``[..., 3]`` <-> one flat, contiguous
  plane per channel, so each element-wise pass reads contiguous memory.

Nothing here knows about colour. What each choice gains is measured in bench/
(items 1 and 2, ``reports/benchmarks/results.md``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: The bit pattern of float32 1.0 read as an integer. A positive float's bits,
#: read as an integer, are roughly an offset and scaled log2 of it.
_ONE_BITS = float(np.array(1.0, np.float32).view(np.int32))


def positive_pow(x, exponent):
    """``x ** exponent`` for ``x > 0`` (callers clamp ``x`` first), as
    ``exp(exponent * log(x))``."""
    return tf.exp(exponent * tf.math.log(x))


def exp_log_cube_root(t):
    """Cube root of ``t > 0`` in three element-wise ops: the choice op by op."""
    return positive_pow(t, 1.0 / 3.0)


def halley_cube_root(t):
    """Cube root of ``t > 0`` by arithmetic alone: the choice under XLA.

    A first guess from the float's bit pattern (its exponent divided by 3, off
    by at most ~3%), then two steps of Halley's method, each of which triples
    the number of correct digits (3% -> 1e-5 -> float32 rounding)."""
    bits = tf.cast(tf.bitcast(tf.cast(t, tf.float32), tf.int32), tf.float32)
    guess = tf.bitcast(tf.cast(bits / 3.0 + _ONE_BITS * 2.0 / 3.0, tf.int32), tf.float32)
    root = tf.cast(guess, t.dtype)
    for _ in range(2):
        cube = root * root * root
        root = root * (cube + 2.0 * t) / (2.0 * cube + t)
    return root


def table_8bit(function) -> np.ndarray:
    """``function`` evaluated once at each 8-bit value ``k / 255`` (k = 0..255),
    in float64, as a float32 table for ``lookup_8bit``."""
    return np.asarray(function(np.arange(256) / 255.0), np.float32)


def lookup_8bit(table, values):
    """``table[values]`` for uint8 ``values`` of any shape: the tabulated
    function applied exactly, by a gather."""
    return tf.gather(table, tf.cast(values, tf.int32))


def channel_planes(pixels):
    """``[..., 3]`` -> ``[3, N]``: one flat plane per channel, each contiguous.

    In ``[..., 3]`` a channel's values lie 3 apart in memory; one transposing
    copy up front makes every later pass over a channel a contiguous one."""
    return tf.transpose(tf.reshape(pixels, [-1, 3]))


def interleaved(planes, shape):
    """Flat planes ``[C, N]`` -> ``[..., C]`` of ``shape``: the inverse of
    ``channel_planes``."""
    return tf.reshape(tf.transpose(planes), shape)

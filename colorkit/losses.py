"""The losses the course's models train with.

* ``l2`` / ``l1``: regression of ab. L2 (the strided-CNN and ResNet reports'
  MSE) is the mean of the squared error; averaging over plausible colours is
  what makes L2 colorizations grey-brown, which is why Zhang et al. classify.
  L1 is the GAN report's reconstruction term (pix2pix's choice: less blurry).
* ``RebalancedCrossEntropy``: Zhang et al.'s classification loss, the
  cross-entropy between the soft-encoded true colour and the predicted
  distribution over the ab bins, with each pixel weighted by how rare its
  colour class is (``colorkit.quantize.rebalance_weights``).
* ``discriminator_loss`` / ``generator_adversarial_loss``: the conditional GAN's
  objectives, binary cross-entropy on logits (pix2pix) or least squares (LSGAN).

All of them compute in float32, also under a mixed-precision policy.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from colorkit import color, quantize
from colorkit.errors import ColorkitError

#: The adversarial criteria: "bce" (sigmoid cross-entropy on logits) or "lsgan" (least squares).
GAN_KINDS = ("bce", "lsgan")


def _float32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


# --- Regression -------------------------------------------------------------------------


def l2(ab_true, ab_pred) -> tf.Tensor:
    """Mean squared error over every pixel and channel (Keras' "mse")."""
    return tf.reduce_mean(tf.square(_float32(ab_pred) - _float32(ab_true)))


def l1(ab_true, ab_pred) -> tf.Tensor:
    """Mean absolute error over every pixel and channel (Keras' "mae")."""
    return tf.reduce_mean(tf.abs(_float32(ab_pred) - _float32(ab_true)))


# --- Zhang et al.'s class-rebalanced cross-entropy ----------------------------------------------


@keras.saving.register_keras_serializable(package="colorkit")
class RebalancedCrossEntropy(keras.losses.Loss):
    """Cross-entropy over the ab bins, each pixel weighted by its colour class's weight.

    Per pixel: ``-w[q*] * sum_q z_q log p_q``, where z is the soft-encoded true
    colour, p the predicted distribution and q* the bin z peaks at (the true
    colour's nearest bin). The mean over pixels is the loss. The weight multiplies
    the pixel's loss, so it scales that pixel's gradient: rare colours pull
    harder. Pass this object to ``model.compile(loss=...)``; compiling with a
    plain cross-entropy after building this one (an easy slip) would silently
    train without rebalancing.

    ``y_true`` may be either
      * the soft-encoded target, [..., Q] (``colorkit.quantize.soft_encode``), or
      * the normalised ab (ab / 110, as colorkit's data pipeline makes it) at the
        logits' resolution, [..., 2]: the loss then soft-encodes it itself with
        ``bins``, ``k`` and ``sigma`` in the compact form (k numbers per pixel),
        so the input pipeline carries 2 numbers per pixel instead of Q and the
        encoding runs wherever the model does (the accelerator).

    ``class_weights``: [Q] weights from ``quantize.rebalance_weights``; None
    weights every pixel 1 (the plain soft cross-entropy). ``from_logits``: whether
    ``y_pred`` holds logits (the Zhang model's output) or probabilities.
    """

    def __init__(
        self,
        class_weights=None,
        from_logits: bool = True,
        bins=None,
        k: int = quantize.DEFAULT_K,
        sigma: float = quantize.DEFAULT_SIGMA,
        name: str = "rebalanced_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else self._checked_weights(class_weights)
        self.from_logits = bool(from_logits)
        self.bins = None if bins is None else quantize.check_bins(bins)
        self.k = k
        self.sigma = sigma

    @staticmethod
    def _checked_weights(class_weights) -> np.ndarray:
        weights = np.asarray(class_weights, dtype=np.float32)
        if weights.ndim != 1 or len(weights) < 3 or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ColorkitError(
                "class_weights must be a 1-D array of Q >= 3 finite, non-negative weights "
                "(colorkit.quantize.rebalance_weights)"
            )
        return weights

    def _log_probs(self, y_pred):
        if self.from_logits:
            return tf.nn.log_softmax(y_pred, axis=-1)
        return tf.math.log(tf.clip_by_value(y_pred, keras.config.epsilon(), 1.0))

    def call(self, y_true, y_pred):
        y_true, y_pred = _float32(y_true), _float32(y_pred)
        num_bins = y_pred.shape[-1]
        if self.class_weights is not None and num_bins != len(self.class_weights):
            raise ColorkitError(
                f"the model predicts {num_bins} bins but there are {len(self.class_weights)} class weights; "
                "compute the weights with the same bins the model was built for"
            )
        if y_true.shape[-1] not in (2, num_bins):
            raise ColorkitError(
                f"the target must be soft-encoded [..., {num_bins}] or normalised ab [..., 2], got {y_true.shape}"
            )
        log_probs = self._log_probs(y_pred)
        if y_true.shape[-1] == 2:
            indices, soft = quantize.soft_encode_sparse(color.denormalize_ab(y_true), self.bins, self.k, self.sigma)
            picked = tf.gather(log_probs, indices, batch_dims=indices.shape.rank - 1)
            cross_entropy = -tf.reduce_sum(soft * picked, axis=-1)
            peak = indices[..., 0]  # nearest first: the bin the soft target peaks at
        else:
            cross_entropy = -tf.reduce_sum(y_true * log_probs, axis=-1)
            peak = tf.argmax(y_true, axis=-1, output_type=tf.int32)
        if self.class_weights is None:
            return cross_entropy
        return tf.gather(tf.constant(self.class_weights), peak) * cross_entropy

    def get_config(self):
        config = super().get_config()
        config.update(
            class_weights=None if self.class_weights is None else self.class_weights.tolist(),
            from_logits=self.from_logits,
            bins=None if self.bins is None else self.bins.tolist(),
            k=self.k,
            sigma=self.sigma,
        )
        return config


# --- GAN objectives --------------------------------------------------------------------------


def _adversarial_term(logits, target: float, kind: str) -> tf.Tensor:
    """How far the discriminator's outputs are from ``target`` (1: real, 0: fake), averaged.

    "bce": sigmoid cross-entropy on logits (numerically stable; no sigmoid in the
    network). "lsgan": squared distance of the raw outputs from the target (Mao
    et al.), which keeps pushing fakes that are already classified correctly."""
    if kind not in GAN_KINDS:
        raise ColorkitError(f"the GAN loss kind must be one of {', '.join(GAN_KINDS)}, got {kind!r}")
    logits = _float32(logits)
    labels = tf.fill(tf.shape(logits), target)
    if kind == "bce":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    return tf.reduce_mean(tf.square(logits - labels))


def discriminator_loss(real_logits, fake_logits, kind: str = "bce") -> tf.Tensor:
    """The discriminator's loss: call real pairs real and generated pairs fake.

    Halved, as pix2pix does, so the discriminator learns at half the
    generator's pace."""
    return 0.5 * (_adversarial_term(real_logits, 1.0, kind) + _adversarial_term(fake_logits, 0.0, kind))


def generator_adversarial_loss(fake_logits, kind: str = "bce") -> tf.Tensor:
    """The generator's adversarial loss: make the discriminator call its output real
    (the non-saturating form, which still gives gradients while the discriminator wins)."""
    return _adversarial_term(fake_logits, 1.0, kind)

"""colorkit.losses: regression losses, the rebalanced cross-entropy, GAN objectives.

Expected values are worked by hand or written out with plain TensorFlow ops."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorkit import color, losses, quantize
from colorkit.errors import ColorkitError

Q = len(quantize.ab_bins())


def softplus(x):
    return math.log1p(math.exp(x))


# --- Regression -------------------------------------------------------------------------------


def test_l2_and_l1_by_hand():
    true = np.array([[0.0, 0.5], [-0.5, 1.0]], np.float32)
    pred = np.array([[0.5, 0.5], [0.5, 0.0]], np.float32)  # errors 0.5, 0, 1, -1
    assert float(losses.l2(true, pred)) == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert float(losses.l1(true, pred)) == pytest.approx((0.5 + 0 + 1 + 1) / 4)


# --- Rebalanced cross-entropy -----------------------------------------------------------------


def imbalanced_case(rng, pixels=48):
    """Soft-encoded targets where 3/4 of the pixels share one grey colour and the rest
    are saturated, the prior's weights (lam = 0.5) and some logits."""
    ab = np.zeros((pixels, 2), np.float32)
    ab[pixels * 3 // 4:] = rng.uniform([40, 40], [70, 70], (pixels - pixels * 3 // 4, 2))
    ab = ab.reshape(2, pixels // 8, 4, 2)
    weights = quantize.rebalance_weights(quantize.empirical_prior(ab), lam=0.5).astype(np.float32)
    logits = rng.normal(0, 1, ab.shape[:-1] + (Q,)).astype(np.float32)
    return ab, quantize.soft_encode(ab), weights, logits


def weighted_cross_entropy(target, logits, weights):
    """The loss written out: mean over pixels of w[argmax z] * -sum z log softmax(logits)."""
    per_pixel = -tf.reduce_sum(target * tf.nn.log_softmax(logits), axis=-1)
    return tf.reduce_mean(tf.gather(weights, tf.argmax(target, axis=-1)) * per_pixel)


def loss_and_gradient(loss_fn, target, logits):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss_fn(target, logits)
    return float(value), tape.gradient(value, logits).numpy()


def test_rebalanced_loss_value_by_hand(rng):
    _, target, weights, logits = imbalanced_case(rng)
    loss = losses.RebalancedCrossEntropy(weights)
    expected = float(weighted_cross_entropy(target, logits, weights))
    assert float(loss(target, logits)) == pytest.approx(expected, rel=1e-5)


def test_rebalancing_changes_the_gradient_and_unit_weights_do_not(rng):
    _, target, weights, logits = imbalanced_case(rng)
    assert weights.max() / weights.min() > 2  # the case really is imbalanced
    plain = keras.losses.CategoricalCrossentropy(from_logits=True)
    plain_value, plain_grad = loss_and_gradient(plain, target, logits)
    _, rebalanced_grad = loss_and_gradient(losses.RebalancedCrossEntropy(weights), target, logits)
    assert not np.allclose(rebalanced_grad, plain_grad, atol=1e-6)
    # per pixel, the rebalanced gradient is the plain one scaled by that pixel's weight
    pixel_weight = weights[target.argmax(-1)][..., None]
    assert np.allclose(rebalanced_grad, pixel_weight * plain_grad, atol=1e-7)
    unit_value, unit_grad = loss_and_gradient(losses.RebalancedCrossEntropy(np.ones(Q)), target, logits)
    assert unit_value == pytest.approx(plain_value, rel=1e-5)
    assert np.allclose(unit_grad, plain_grad, atol=1e-8)
    none_value, _ = loss_and_gradient(losses.RebalancedCrossEntropy(), target, logits)
    assert none_value == pytest.approx(plain_value, rel=1e-5)


def test_ab_targets_give_the_same_loss_as_soft_encoded_ones(rng):
    ab, target, weights, logits = imbalanced_case(rng)
    for k in (5, 10):
        loss = losses.RebalancedCrossEntropy(weights, k=k)
        dense = loss_and_gradient(loss, quantize.soft_encode(ab, k=k), logits)
        from_ab = loss_and_gradient(loss, color.normalize_ab(ab), logits)
        assert from_ab[0] == pytest.approx(dense[0], rel=1e-5)
        assert np.allclose(from_ab[1], dense[1], atol=1e-7)


def test_probabilities_instead_of_logits(rng):
    _, target, weights, logits = imbalanced_case(rng)
    probs = tf.nn.softmax(logits).numpy()
    from_probs = losses.RebalancedCrossEntropy(weights, from_logits=False)(target, probs)
    from_logits = losses.RebalancedCrossEntropy(weights)(target, logits)
    assert float(from_probs) == pytest.approx(float(from_logits), rel=1e-4)


def tiny_classifier(seed):
    inputs = keras.Input((4, 4, 1))
    logits = keras.layers.Conv2D(Q, 1, kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    return keras.Model(inputs, logits)


def weights_after_one_fit_step(loss, x, y):
    model = tiny_classifier(seed=3)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_the_weights_reach_the_gradient_through_compile_and_fit(rng):
    ab, target, weights, _ = imbalanced_case(rng, pixels=32)  # two 4x4 images
    x = rng.normal(0, 1, (2, 4, 4, 1)).astype(np.float32)
    fitted = weights_after_one_fit_step(losses.RebalancedCrossEntropy(weights), x, target)

    reference = tiny_classifier(seed=3)
    with tf.GradientTape() as tape:
        value = weighted_cross_entropy(target, reference(x), weights)
    grads = tape.gradient(value, reference.trainable_variables)
    expected = [w.numpy() - 0.5 * g.numpy() for w, g in zip(reference.trainable_variables, grads)]
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(fitted, expected))

    plain = weights_after_one_fit_step(keras.losses.CategoricalCrossentropy(from_logits=True), x, target)
    assert not np.allclose(plain[0], fitted[0], atol=1e-5)
    from_ab = weights_after_one_fit_step(losses.RebalancedCrossEntropy(weights), x, color.normalize_ab(ab))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(from_ab, fitted))


def test_rebalanced_loss_serialises_with_its_weights(rng):
    _, target, weights, logits = imbalanced_case(rng)
    loss = losses.RebalancedCrossEntropy(weights, bins=quantize.ab_bins(), k=10, sigma=4.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, losses.RebalancedCrossEntropy)
    assert np.array_equal(restored.class_weights, loss.class_weights) and restored.k == 10 and restored.sigma == 4.0
    assert float(restored(target, logits)) == pytest.approx(float(loss(target, logits)))


def test_rebalanced_loss_refuses_mismatched_shapes(rng):
    _, target, weights, logits = imbalanced_case(rng)
    with pytest.raises(ColorkitError, match="class weights"):
        losses.RebalancedCrossEntropy(weights)(target[..., :-1], logits[..., :-1])
    with pytest.raises(ColorkitError, match="soft-encoded"):
        losses.RebalancedCrossEntropy(weights)(target[..., :7], logits)
    with pytest.raises(ColorkitError, match="class_weights"):
        losses.RebalancedCrossEntropy([[1.0, 2.0]])


# --- GAN objectives ---------------------------------------------------------------------------


def test_bce_gan_losses_by_hand():
    assert float(losses.discriminator_loss([0.0], [0.0])) == pytest.approx(math.log(2))
    real, fake = np.array([2.0, -1.0]), np.array([0.5])
    real_term = (softplus(-2.0) + softplus(1.0)) / 2  # -log sigmoid(x) = softplus(-x)
    fake_term = softplus(0.5)  # -log(1 - sigmoid(x)) = softplus(x)
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(0.5 * (real_term + fake_term), rel=1e-6)
    assert float(losses.generator_adversarial_loss(fake)) == pytest.approx(softplus(-0.5), rel=1e-6)
    patch = np.full((1, 30, 30, 1), 3.0, np.float32)  # PatchGAN maps average over patches
    assert float(losses.generator_adversarial_loss(patch)) == pytest.approx(softplus(-3.0), rel=1e-6)


def test_lsgan_losses_by_hand():
    real, fake = np.array([1.0, 0.0]), np.array([0.5])
    assert float(losses.discriminator_loss(real, fake, kind="lsgan")) == pytest.approx(0.5 * (0.5 + 0.25))
    assert float(losses.generator_adversarial_loss(fake, kind="lsgan")) == pytest.approx(0.25)


def test_gan_losses_refuse_an_unknown_kind():
    with pytest.raises(ColorkitError, match="bce, lsgan"):
        losses.discriminator_loss([0.0], [0.0], kind="wgan")

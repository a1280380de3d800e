"""The model ladder: registry, shapes, exact parameter counts, wiring, seeds, weights, reloading."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from colorkit import models
from colorkit.errors import ColorkitError
from colorkit.models import pix2pix, resnet
from colorkit.models.blocks import BilinearUpsample2x
from colorkit.models.fusion import TileToMap

OWN_FAMILIES = ("strided_cnn", "resnet18_decoder", "unet_generator", "patchgan")
SIZES = ((64, 64), (128, 128), (256, 256), (64, 128))


def trainable_count(model):
    """Parameters as PyTorch counts them: BatchNorm scale/shift in, running statistics out."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def conv_params(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn_params(channels):
    return 2 * channels


def model_inputs(model, height, width, rng):
    """Random inputs for ``model`` at the given size: one array, or a list for several inputs."""
    arrays = [rng.uniform(-1, 1, (1, height, width, tensor.shape[-1])).astype("float32") for tensor in model.inputs]
    return arrays if len(arrays) > 1 else arrays[0]


# --- Registry -------------------------------------------------------------------------------


def test_available_lists_every_family_with_one_line():
    listed = models.available()
    assert set(listed) == {*OWN_FAMILIES, "zhang_eccv16"}
    assert all(text and "\n" not in text for text in listed.values())


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ColorkitError) as error:
        models.build("vgg16")
    assert all(name in str(error.value) for name in models.available())


def test_unknown_option_is_a_colorkit_error():
    with pytest.raises(ColorkitError, match="accepts"):
        models.build("strided_cnn", colour=True)


@pytest.mark.parametrize("name", [*OWN_FAMILIES, "zhang_eccv16"])
def test_size_not_a_multiple_is_refused_before_building(name):
    multiple = models.required_multiple(name)
    with pytest.raises(ColorkitError, match=f"multiples of {multiple}"):
        models.build(name, input_shape=(64, 64 + multiple // 2, 1))


@pytest.mark.parametrize(
    "name, options",
    [
        ("unet_generator", {"depth": 8, "input_shape": (64, 64, 1)}),  # 64 cannot halve 8 times
        ("patchgan", {"input_shape": (16, 16, 1)}),  # below the smallest size with one logit
        ("strided_cnn", {"input_shape": (64, 64, 3)}),  # the input is L, one channel
        ("strided_cnn", {"width": 0}),
        ("strided_cnn", {"output_activation": "sigmoid"}),
        ("resnet18_decoder", {"upsample": "cubic"}),
        ("unet_generator", {"depth": 9}),
        ("strided_cnn", {"seed": -1}),
        ("strided_cnn", {"input_shape": "64x64"}),
    ],
)
def test_bad_options_are_colorkit_errors(name, options):
    with pytest.raises(ColorkitError):
        models.build(name, **options)


@pytest.mark.parametrize(
    "name, option, value, wording",
    [
        ("strided_cnn", "width", True, "a number in (0, 16]"),  # a bool is not a number
        ("resnet18_decoder", "width", 17, "a number in (0, 16]"),
        ("patchgan", "seed", 1.5, "a whole number in [0, 4294967295]"),
        ("strided_cnn", "hints", "yes", "True or False"),
        ("resnet18_decoder", "fusion", 1, "True or False"),
        ("resnet18_decoder", "trunk_weights", 3, "a file path"),
        ("unet_generator", "depth", True, "a whole number in [3, 8]"),
        ("unet_generator", "depth", 2, "a whole number in [3, 8]"),
        ("patchgan", "depth", 7, "a whole number in [1, 6]"),
        ("zhang_eccv16", "num_bins", 2, "a whole number, at least 3"),
        ("zhang_eccv16", "head", "softmax", "one of classification, regression"),
        ("strided_cnn", "name", "", "a non-empty string"),
    ],
)
def test_a_bad_option_is_named_with_what_it_must_be(name, option, value, wording):
    with pytest.raises(ColorkitError) as error:
        models.build(name, **{option: value})
    assert str(error.value).startswith(f"{name}: {option} must be {wording}, got {value!r}")


def test_required_multiple_checks_the_options_it_depends_on():
    with pytest.raises(ColorkitError, match="depth"):
        models.required_multiple("unet_generator", depth=9)
    with pytest.raises(ColorkitError, match="accepts"):
        models.required_multiple("patchgan", levels=3)


def test_required_multiples():
    assert models.required_multiple("strided_cnn") == 8
    assert models.required_multiple("resnet18_decoder") == 8
    assert models.required_multiple("unet_generator") == 8  # the depth then follows the size
    assert models.required_multiple("unet_generator", depth=8) == 256
    assert models.required_multiple("patchgan", depth=4) == 16


def test_unet_depth_follows_the_input_size():
    assert pix2pix.unet_depth((256, 256, 1)) == 8
    assert pix2pix.unet_depth((512, 1024, 1)) == 8  # capped
    assert pix2pix.unet_depth((64, 128, 1)) == 6
    assert pix2pix.unet_depth((96, 96, 1)) == 5  # 96 = 32 * 3
    assert pix2pix.unet_depth((None, None, 1)) == 8
    assert pix2pix.unet_depth((64, 64, 1), depth=4) == 4


# --- Shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        ("strided_cnn", {"width": 0.125}),
        ("resnet18_decoder", {"width": 0.25}),
        ("resnet18_decoder", {"width": 0.25, "upsample": "transposed", "fusion": True}),
        ("resnet18_decoder", {"width": 0.25, "upsample": "bilinear"}),
    ],
)
def test_regression_models_keep_the_input_size(name, options, rng):
    model = models.build(name, **options)  # any size: one build, four sizes
    assert [tensor.name for tensor in model.inputs] == ["l"] and model.output_names == ["ab"]
    for height, width in SIZES:
        ab = model.predict(model_inputs(model, height, width, rng), verbose=0)
        assert ab.shape == (1, height, width, 2)
        assert ab.dtype == np.float32


@pytest.mark.parametrize("height, width", [(64, 64), (128, 128), (64, 128)])
@pytest.mark.parametrize("fusion", [False, True])
def test_unet_keeps_the_input_size(height, width, fusion, rng):
    model = models.build("unet_generator", input_shape=(height, width, 1), width=0.125, fusion=fusion)
    assert model.output_shape == (None, height, width, 2)
    assert model.predict(model_inputs(model, height, width, rng), verbose=0).shape == (1, height, width, 2)


def test_unet_256_full_size_parameter_count_and_bottleneck(rng):
    model = models.build("unet_generator", input_shape=(256, 256, 1))
    filters = (64, 128, 256, 512, 512, 512, 512, 512)  # C64-C128-C256-C512-C512-C512-C512-C512
    down = conv_params(4, 1, 64, bias=False) + sum(
        conv_params(4, c_in, c_out, bias=False) + bn_params(c_out) for c_in, c_out in zip(filters, filters[1:])
    )
    # Decoder blocks, innermost first: each doubles the size and maps to the filters of
    # the level above; from the second on, the input is the previous block's output
    # concatenated with the encoder map of the same size (twice its channels).
    outputs = filters[-2::-1]  # 512, 512, 512, 512, 256, 128, 64
    inputs = [filters[-1]] + [2 * c for c in outputs[:-1]]
    up = sum(conv_params(4, c_in, c_out, bias=False) + bn_params(c_out) for c_in, c_out in zip(inputs, outputs))
    up += conv_params(4, 2 * filters[0], 2)  # the output layer, with bias
    assert down + up == 54_410_882
    assert trainable_count(model) == down + up
    assert abs(trainable_count(model) - 54.4e6) / 54.4e6 < 0.005
    assert model.get_layer("down8_act").output.shape[1:3] == (1, 1)  # 256 / 2**8
    assert model.predict(model_inputs(model, 256, 256, rng), verbose=0).shape == (1, 256, 256, 2)


def test_patchgan_outputs_one_logit_per_patch(rng):
    model = models.build("patchgan", width=0.25)
    assert [tensor.name for tensor in model.inputs] == ["l", "ab"] and model.output_names == ["logits"]
    for height, width in SIZES:
        logits = model.predict(model_inputs(model, height, width, rng), verbose=0)
        assert logits.shape == (1, height // 8 - 2, width // 8 - 2, 1)
    fixed = models.build("patchgan", input_shape=(256, 256, 1), width=0.25)
    assert fixed.output_shape == (None, 30, 30, 1)


def test_zhang_head_is_at_a_quarter_of_the_input_size(rng):
    pytest.importorskip("colorkit.models.zhang")
    model = models.build("zhang_eccv16", width=0.125)
    assert [tensor.name for tensor in model.inputs] == ["l"]
    for height, width in SIZES:
        out = model.predict(model_inputs(model, height, width, rng), verbose=0)
        assert out.shape[:3] == (1, height // 4, width // 4)


# --- Parameter counts (hand arithmetic) ---------------------------------------------------------


def test_strided_cnn_has_the_reports_parameter_count():
    channels = [1, 128, 128, 256, 256, 512, 512, 256, 128, 64, 32, 16, 2]
    expected = sum(conv_params(3, c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
    assert expected == 6_146_194
    assert trainable_count(models.build("strided_cnn")) == expected


def test_resnet18_decoder_has_pytorchs_parameter_count():
    def basic_block(c_in, c_out):
        shortcut = conv_params(1, c_in, c_out, False) + bn_params(c_out) if c_in != c_out else 0
        convs = conv_params(3, c_in, c_out, False) + conv_params(3, c_out, c_out, False)
        return convs + 2 * bn_params(c_out) + shortcut

    stem = conv_params(7, 1, 64, False) + bn_params(64)
    trunk = stem + 2 * basic_block(64, 64) + basic_block(64, 128) + basic_block(128, 128)
    decoder = sum(
        conv_params(3, c_in, c_out) + bn_params(c_out) for c_in, c_out in [(128, 128), (128, 64), (64, 64), (64, 32)]
    ) + conv_params(3, 32, 2)
    assert (trunk, decoder) == (676_800, 277_922)
    model = models.build("resnet18_decoder")
    assert trainable_count(model.get_layer(resnet.TRUNK_NAME)) == trunk
    assert trainable_count(model) == trunk + decoder == 954_722
    # Transposed convolutions add learned 4x4 upsamplers (with bias) at 128, 64 and 2 channels.
    transposed = models.build("resnet18_decoder", upsample="transposed")
    assert trainable_count(transposed) == 954_722 + sum(conv_params(4, c, c) for c in (128, 64, 2))


def test_patchgan_parameter_count():
    expected = (
        conv_params(4, 3, 64)
        + conv_params(4, 64, 128, False) + bn_params(128)
        + conv_params(4, 128, 256, False) + bn_params(256)
        + conv_params(4, 256, 512, False) + bn_params(512)
        + conv_params(4, 512, 1)
    )
    assert trainable_count(models.build("patchgan")) == expected == 2_765_633
    assert abs(expected - 2.77e6) / 2.77e6 < 0.005


# --- Receptive field ------------------------------------------------------------------------------


def test_patchgan_receptive_field_is_70():
    assert models.receptive_field(models.build("patchgan", width=0.125)) == 70
    # Hand-computed for two strided blocks: 1 -> 4 -> 7 -> 16 -> 34.
    assert models.receptive_field(models.build("patchgan", depth=2, width=0.125)) == 34


def test_receptive_field_of_a_hand_built_stack():
    image = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(1, 3)(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(1, 3, dilation_rate=2)(x)
    # Backwards: 1 -> dilated 3x3: 5 -> pool 2/2: (5 - 1) * 2 + 2 = 10 -> 3x3: 12.
    assert models.receptive_field(keras.Model(image, x)) == 12


def test_receptive_field_refuses_upsampling_models():
    with pytest.raises(ColorkitError, match="UpSampling2D"):
        models.receptive_field(models.build("strided_cnn", width=0.125))


# --- U-Net wiring -------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", [False, True])
def test_unet_skips_join_encoder_and_decoder_maps_of_the_same_size(fusion):
    size, depth = 64, 6
    model = models.build("unet_generator", input_shape=(size, size, 1), width=0.125, fusion=fusion)
    concats = [layer for layer in model.layers if layer.name.startswith("skip")]
    assert all(isinstance(layer, keras.layers.Concatenate) for layer in concats)
    all_concats = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(all_concats) == depth - 1 + fusion  # the fusion layer concatenates once more
    assert sorted(layer.name for layer in concats) == sorted(f"skip{level}" for level in range(1, depth))
    for layer in concats:
        level = int(layer.name.removeprefix("skip"))
        decoder_side, encoder_side = models.inbound_layers(model, layer)
        expected_encoder = "fusion_conv" if fusion and level == pix2pix.FUSION_LEVEL else f"down{level}_act"
        assert (decoder_side.name, encoder_side.name) == (f"up{level}_act", expected_encoder)
        side = size // 2**level
        assert decoder_side.output.shape[1:3] == encoder_side.output.shape[1:3] == (side, side)


def test_unet_noise_is_dropout_in_the_three_innermost_up_blocks(rng):
    model = models.build("unet_generator", input_shape=(64, 64, 1), width=0.125)  # depth 6
    dropouts = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout))
    assert dropouts == ["up3_dropout", "up4_dropout", "up5_dropout"]
    l_norm = model_inputs(model, 64, 64, rng)
    np.testing.assert_array_equal(model(l_norm, training=False), model(l_norm, training=False))
    assert not np.allclose(model(l_norm, training=True), model(l_norm, training=True))


def test_unet_weights_follow_pix2pix_initialisation():
    model = models.build("unet_generator", input_shape=(64, 64, 1), width=0.25)
    kernel = model.get_layer("down4_conv").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3


def test_bilinear_upsampling_matches_tf_image_resize_at_any_size(rng):
    import tensorflow as tf

    image = keras.Input((None, None, 3))
    model = keras.Model(image, BilinearUpsample2x()(image))
    x = rng.normal(size=(2, 5, 7, 3)).astype("float32")
    expected = tf.image.resize(x, (10, 14), "bilinear").numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)


# --- Output activations -------------------------------------------------------------------------


def test_reports_relu_output_cannot_be_negative_while_tanh_can(rng):
    l_norm = model_inputs(models.build("strided_cnn", width=0.125), 64, 64, rng)
    relu = models.build("strided_cnn", width=0.125, output_activation="relu").predict(l_norm, verbose=0)
    tanh = models.build("strided_cnn", width=0.125, seed=3).predict(l_norm, verbose=0)
    assert relu.min() >= 0.0
    assert tanh.min() < 0.0 and np.abs(tanh).max() <= 1.0


# --- Seeds -----------------------------------------------------------------------------------


SEEDED = [
    ("strided_cnn", {"width": 0.125, "hints": True}),
    ("resnet18_decoder", {"width": 0.25, "fusion": True}),
    ("unet_generator", {"input_shape": (64, 64, 1), "width": 0.125, "fusion": True, "hints": True,
                        "global_hints": True}),
    ("patchgan", {"width": 0.125}),
]


def random_weights(model):
    """The weights drawn at random (BatchNorm's ones and zeros and the biases are not)."""
    return [w.numpy() for w in model.weights if w.numpy().std() > 0]


@pytest.mark.parametrize("name, options", SEEDED)
def test_same_seed_same_weights_other_seed_other_weights(name, options):
    first = random_weights(models.build(name, seed=5, **options))
    other = random_weights(models.build(name, seed=6, **options))
    again = random_weights(models.build(name, seed=5, **options))
    assert len(first) > 4 and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(not np.array_equal(a, b) for a, b in zip(first, other))  # every tensor, not only the first


def test_a_build_does_not_depend_on_what_was_built_before():
    alone = random_weights(models.build("patchgan", width=0.125, seed=2))
    models.build("unet_generator", input_shape=(64, 64, 1), width=0.125, seed=2)
    after = random_weights(models.build("patchgan", width=0.125, seed=2))
    assert all(np.array_equal(a, b) for a, b in zip(alone, after))


def test_builds_leave_global_random_state_alone():
    import random

    import tensorflow as tf

    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    tf_state = tf.random.get_global_generator().state.numpy().copy()
    for name, options in SEEDED:
        models.build(name, seed=3, **options)
    assert random.getstate() == python_state
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    np.testing.assert_array_equal(tf.random.get_global_generator().state.numpy(), tf_state)


def test_layers_of_the_same_shape_get_different_weights():
    model = models.build("resnet18_decoder", width=0.25)
    trunk = model.get_layer(resnet.TRUNK_NAME)
    kernels = [trunk.get_layer(f"layer1_{block}_conv{conv}").kernel.numpy() for block in (0, 1) for conv in (1, 2)]
    unet = models.build("unet_generator", input_shape=(64, 64, 1), width=0.125)  # depth 6
    kernels += [unet.get_layer(f"down{level}_conv").kernel.numpy() for level in (5, 6)]
    gammas = [unet.get_layer(f"down{level}_bn").gamma.numpy() for level in (4, 5, 6)]
    for group in (kernels[:4], kernels[4:], gammas):
        assert all(a.shape == group[0].shape for a in group)
        assert all(not np.array_equal(a, b) for i, a in enumerate(group) for b in group[i + 1:])


def test_dropout_seeds_follow_the_build_seed():
    def dropout_seeds(seed):
        model = models.build("unet_generator", input_shape=(64, 64, 1), width=0.125, seed=seed)
        return [layer.seed for layer in model.layers if isinstance(layer, keras.layers.Dropout)]

    first = dropout_seeds(1)
    assert first == dropout_seeds(1) and len(set(first)) == 3
    assert set(first).isdisjoint(dropout_seeds(2))


# --- Fusion -------------------------------------------------------------------------------------


def test_tile_to_map_copies_the_vector_to_every_position(rng):
    vector = rng.normal(size=(2, 3)).astype("float32")
    feature_map = np.zeros((2, 4, 5, 7), "float32")
    tiled = np.asarray(TileToMap()([vector, feature_map]))
    assert tiled.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(tiled, np.broadcast_to(vector[:, None, None, :], (2, 4, 5, 3)))


@pytest.mark.parametrize("name, size", [("resnet18_decoder", 64), ("unet_generator", 64)])
def test_fusion_adds_a_global_branch(name, size):
    plain = models.build(name, input_shape=(size, size, 1), width=0.25)
    fused = models.build(name, input_shape=(size, size, 1), width=0.25, fusion=True)
    assert trainable_count(fused) > trainable_count(plain)
    assert any(isinstance(layer, TileToMap) for layer in fused.layers)
    assert isinstance(fused.get_layer("fusion_global_pool"), keras.layers.GlobalAveragePooling2D)


def test_models_output_float32_under_mixed_precision(rng):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        built = [
            models.build("resnet18_decoder", width=0.25, fusion=True),
            models.build("unet_generator", input_shape=(64, 64, 1), width=0.125, fusion=True),
            models.build("patchgan", width=0.125),
        ]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for model in built:
        out = model.predict(model_inputs(model, 64, 64, rng), verbose=0)
        assert out.dtype == np.float32 and np.isfinite(out).all()


# --- Trunk weights from local files ---------------------------------------------------------------


def trunk_outputs(model, l_norm):
    return model.get_layer(resnet.TRUNK_NAME)(l_norm, training=False).numpy()


def test_trunk_weights_from_keras_file(tmp_path, rng):
    source = models.build("resnet18_decoder", seed=1)
    path = tmp_path / "trunk.weights.h5"
    source.get_layer(resnet.TRUNK_NAME).save_weights(path)
    loaded = models.build("resnet18_decoder", seed=2, trunk_weights=path)
    l_norm = model_inputs(loaded, 32, 32, rng)
    np.testing.assert_array_equal(trunk_outputs(loaded, l_norm), trunk_outputs(source, l_norm))
    with pytest.raises(ColorkitError, match="does not fit"):
        models.build("resnet18_decoder", width=0.5, trunk_weights=path)


def torchvision_state_dict(trunk):
    """The trunk's weights under torchvision's keys and layouts, with an RGB stem."""
    arrays = {}
    for layer in trunk.layers:
        key = layer.name.replace("_", ".")
        if isinstance(layer, keras.layers.Conv2D):
            weight = layer.kernel.numpy().transpose(3, 2, 0, 1)  # (h, w, in, out) -> (out, in, h, w)
            if key == "conv1":
                weight = np.repeat(weight / 3, 3, axis=1)  # an RGB stem whose channel sum is the grey stem
            arrays[f"{key}.weight"] = weight
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.numpy() for w in layer.weights)
            arrays.update({f"{key}.weight": gamma, f"{key}.bias": beta, f"{key}.running_mean": mean + 0.1,
                           f"{key}.running_var": variance * 2})
    arrays["fc.weight"] = np.zeros((1000, 512), "float32")  # ignored, as the rest of ResNet-18
    return arrays


def test_trunk_weights_from_torchvision_npz(tmp_path, rng):
    source = models.build("resnet18_decoder", seed=1)
    arrays = torchvision_state_dict(source.get_layer(resnet.TRUNK_NAME))
    path = tmp_path / "resnet18.npz"
    np.savez(path, **arrays)
    loaded = models.build("resnet18_decoder", seed=2, trunk_weights=path)
    trunk, source_trunk = loaded.get_layer(resnet.TRUNK_NAME), source.get_layer(resnet.TRUNK_NAME)
    bn = trunk.get_layer("layer2_0_downsample_1")
    np.testing.assert_array_equal(bn.moving_mean.numpy(), arrays["layer2.0.downsample.1.running_mean"])
    for layer in trunk.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D) and layer.name != "conv1":
            np.testing.assert_array_equal(layer.kernel.numpy(), source_trunk.get_layer(layer.name).kernel.numpy())
    stem = trunk.get_layer("conv1").kernel.numpy()
    np.testing.assert_allclose(stem, arrays["conv1.weight"].sum(axis=1, keepdims=True).transpose(2, 3, 1, 0), rtol=1e-6)
    del arrays["layer1.1.bn2.running_var"]
    np.savez(path, **arrays)
    with pytest.raises(ColorkitError, match="layer1.1.bn2.running_var"):
        models.build("resnet18_decoder", trunk_weights=path)


def test_missing_or_unknown_trunk_weights_file(tmp_path):
    with pytest.raises(ColorkitError, match="does not exist"):
        models.build("resnet18_decoder", trunk_weights=tmp_path / "absent.weights.h5")
    other = tmp_path / "trunk.pt"
    other.write_bytes(b"\0")
    with pytest.raises(ColorkitError, match=r"\.npz"):
        models.build("resnet18_decoder", trunk_weights=other)


# --- .keras round trip in a fresh process ------------------------------------------------------------

ROUND_TRIP = {
    "strided_cnn": ("strided_cnn", {"width": 0.125}),
    "strided_cnn_relu": ("strided_cnn", {"width": 0.125, "output_activation": "relu"}),
    "resnet": ("resnet18_decoder", {"width": 0.25}),
    "resnet_fusion_transposed": ("resnet18_decoder", {"width": 0.25, "fusion": True, "upsample": "transposed"}),
    "resnet_bilinear": ("resnet18_decoder", {"width": 0.25, "upsample": "bilinear"}),
    "unet": ("unet_generator", {"input_shape": (64, 64, 1), "width": 0.125}),
    "unet_fusion": ("unet_generator", {"input_shape": (64, 64, 1), "width": 0.125, "fusion": True}),
    "patchgan": ("patchgan", {"width": 0.25}),
}

RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import colorkit.models  # registers colorkit's custom layers
    import keras

    folder, names = sys.argv[1], sys.argv[2:]
    inputs = np.load(f"{folder}/inputs.npz")
    outputs = {}
    for name in names:
        model = keras.models.load_model(f"{folder}/{name}.keras", compile=False)
        feed = [inputs[f"{name}_{index}"] for index in range(len(model.inputs))]
        feed = feed if len(feed) > 1 else feed[0]
        outputs[name] = model.predict(feed, verbose=0)
    np.savez(f"{folder}/reloaded.npz", **outputs)
    """
)


def assert_round_trip(built: dict, folder, rng):
    """Save each model, reload and predict in a new Python process, compare outputs."""
    inputs, expected = {}, {}
    for name, model in built.items():
        feed = model_inputs(model, 64, 64, rng)
        arrays = feed if isinstance(feed, list) else [feed]
        inputs.update({f"{name}_{index}": array for index, array in enumerate(arrays)})
        expected[name] = model.predict(feed, verbose=0)
        model.save(folder / f"{name}.keras")
    np.savez(folder / "inputs.npz", **inputs)
    subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, str(folder), *built], check=True, timeout=300)
    reloaded = np.load(folder / "reloaded.npz")
    for name in built:
        np.testing.assert_allclose(reloaded[name], expected[name], atol=1e-6, err_msg=name)


def test_every_model_reloads_from_keras_in_a_new_process(tmp_path, rng):
    built = {label: models.build(name, **options) for label, (name, options) in ROUND_TRIP.items()}
    assert_round_trip(built, tmp_path, rng)


def test_zhang_reloads_from_keras_in_a_new_process(tmp_path, rng):
    pytest.importorskip("colorkit.models.zhang")
    assert_round_trip({"zhang": models.build("zhang_eccv16", width=0.125)}, tmp_path, rng)

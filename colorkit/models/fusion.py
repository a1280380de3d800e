"""The fusion layer: one global image feature joined to every position of a local feature map.

After Iizuka, Simo-Serra and Ishikawa ("Let there be Color!", SIGGRAPH 2016),
which the GAN report cites as its "fusion layer". A small global branch looks
at the whole mid-level feature map and summarises it in one vector (is this
indoors, a beach, a night scene?); that vector is copied to every position of
the map, concatenated with the local features, and a 1x1 convolution mixes the
two, so each pixel's colour can depend on what the whole image shows.

Deviation from Iizuka et al.: their global network ends in fully-connected
layers on a fixed 224x224 input; here it ends in global average pooling, so
the fused models keep taking any input size.

Used by ``build("unet_generator", fusion=True)`` and
``build("resnet18_decoder", fusion=True)``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

#: Length of the global feature vector at width 1 (Iizuka et al. use 256).
GLOBAL_UNITS = 256


@keras.saving.register_keras_serializable(package="colorkit")
class TileToMap(layers.Layer):
    """Copy a per-image vector to every position of a feature map.

    Called on ``[vector, feature_map]`` with shapes (B, C) and (B, H, W, *), it
    returns (B, H, W, C). H and W are read at run time, so the layer works for
    any image size. It has no arguments of its own, so the inherited
    ``get_config`` (name, dtype, trainable) describes it completely."""

    def call(self, inputs):
        vector, feature_map = inputs
        map_shape = ops.shape(feature_map)
        target = (map_shape[0], map_shape[1], map_shape[2], ops.shape(vector)[-1])
        return ops.broadcast_to(vector[:, None, None, :], target)

    def compute_output_shape(self, input_shapes):
        vector_shape, map_shape = input_shapes
        return (map_shape[0], map_shape[1], map_shape[2], vector_shape[-1])


def global_features(feature_map, *, units: int, kernel_initializer, name: str):
    """Summarise ``feature_map`` in one vector of ``units`` numbers per image.

    Two stride-2 3x3 convolutions widen the view, global average pooling makes
    the result independent of the image size, and a dense layer maps it to the
    global feature."""
    channels = feature_map.shape[-1]
    x = feature_map
    for index in (1, 2):
        x = layers.Conv2D(
            channels, 3, strides=2, padding="same", activation="relu",
            kernel_initializer=kernel_initializer, name=f"{name}_global_conv{index}",
        )(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_global_pool")(x)
    return layers.Dense(units, activation="relu", kernel_initializer=kernel_initializer, name=f"{name}_global_dense")(x)


def fuse(feature_map, vector, *, kernel_initializer, name: str):
    """Tile ``vector`` over ``feature_map``, concatenate, and mix with a 1x1 convolution.

    The result has as many channels as ``feature_map``, so it can replace it in
    the network without changing anything downstream."""
    tiled = TileToMap(name=f"{name}_tile")([vector, feature_map])
    joined = layers.Concatenate(name=f"{name}_concat")([feature_map, tiled])
    return layers.Conv2D(
        feature_map.shape[-1], 1, activation="relu", kernel_initializer=kernel_initializer, name=f"{name}_conv"
    )(joined)


def fusion_block(feature_map, *, units: int = GLOBAL_UNITS, kernel_initializer, name: str = "fusion"):
    """The whole fusion layer: global branch on ``feature_map``, then ``fuse``.

    ``kernel_initializer`` is the calling family's, so the fused layers start as its own do."""
    vector = global_features(feature_map, units=units, kernel_initializer=kernel_initializer, name=name)
    return fuse(feature_map, vector, kernel_initializer=kernel_initializer, name=name)

"""Inference: colorize an image of any size with a trained model.

The recipe of richzhang/colorization's util, in TF: convert to Lab, feed the
network L at its working size, resize the predicted ab back to the original
size, and join it with the *original full-resolution* L. The output therefore
has the input's size and exactly the input's lightness; only colour is invented.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from colorkit import color
from colorkit.errors import ColorkitError

#: checkpoint files looked for in a run folder, best first
RUN_MODEL_FILES = ("checkpoints/best.keras", "checkpoints/generator.keras", "checkpoints/last.keras")


def find_model_file(source) -> Path:
    """A ``.keras`` file, or the best checkpoint of a run folder."""
    path = Path(source)
    if path.is_dir():
        for name in RUN_MODEL_FILES:
            if (path / name).exists():
                return path / name
        raise ColorkitError(f"no trained model in {path}: expected one of {', '.join(RUN_MODEL_FILES)}")
    if path.suffix != ".keras":
        raise ColorkitError(f"{path} is not a .keras model file or a run folder")
    if not path.exists():
        raise ColorkitError(f"model file {path} does not exist")
    return path


def load_model(source) -> keras.Model:
    """Load a model saved by colorkit (custom layers are registered on import)."""
    import colorkit.models  # noqa: F401  (registers the custom layers)

    path = find_model_file(source)
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise ColorkitError(f"{path} could not be loaded as a Keras model: {error}") from error


def as_colorizer(model: keras.Model, temperature: float = 0.38, bins=None) -> keras.Model:
    """A model that maps normalised L to normalised ab at full resolution.

    Regression models already do; a classification model (Zhang's head, which
    outputs bin logits at 1/4 resolution) is wrapped with the annealed-mean decode."""
    if model.outputs[0].shape[-1] == 2:
        return model
    from colorkit.models.zhang import zhang_inference_model

    return zhang_inference_model(model, temperature=temperature, bins=bins)


def working_size(model: keras.Model, default: int = 256) -> tuple[int, int]:
    """The (height, width) the network was built for, or ``default`` when it takes any size."""
    height, width = model.inputs[0].shape[1:3]
    return (height or default, width or default)


def predict_ab(colorizer: keras.Model, l_norm, batch_size: int = 16) -> np.ndarray:
    """Normalised ab for a batch of normalised L, BatchNorm and dropout in inference mode."""
    outputs = [
        np.asarray(colorizer(l_norm[i : i + batch_size], training=False), np.float32)
        for i in range(0, len(l_norm), batch_size)
    ]
    return np.concatenate(outputs)


def colorize_lab(colorizer: keras.Model, rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Lab of the colorized ``rgb`` ([H, W, 3] in [0, 1]; a colour photo is made gray first),
    before any gamut clipping (the out-of-gamut metric needs it).

    The network sees L resized to ``size`` (its working size by default); its ab
    is resized back to H x W and joined with the original L."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ColorkitError(f"expected an RGB image of shape [H, W, 3], got {rgb.shape}")
    size = size or working_size(colorizer)
    l_full = color.rgb_to_lab(tf.constant(rgb))[..., :1]
    l_small = tf.image.resize(l_full, size, method="area", antialias=True)
    ab_norm = predict_ab(colorizer, color.normalize_l(l_small)[None])[0]
    ab_full = tf.image.resize(color.denormalize_ab(ab_norm), rgb.shape[:2], method="bilinear")
    return tf.concat([l_full, ab_full], axis=-1).numpy()


def colorize_rgb(colorizer: keras.Model, rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Colorize one RGB image: same size, same L, ab clipped into the sRGB gamut."""
    return color.lab_to_rgb(colorize_lab(colorizer, rgb, size))


def colorize(model: keras.Model, image, hints=None, size=None) -> np.ndarray:
    """Colorize ``image`` (an RGB array of any size, or a file path) -> RGB array of the same size."""
    if hints:
        raise ColorkitError("this model takes no hints; train one with --hints to use them")
    if isinstance(image, (str, Path)):
        from colorkit.data.pipeline import load_rgb

        image = load_rgb(image)
    return colorize_rgb(as_colorizer(model), image, size=size)

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


def predict_ab(colorizer: keras.Model, feed, batch_size: int = 16) -> np.ndarray:
    """Normalised ab for a batch of model inputs (normalised L, or the dict of a
    hint model's inputs), BatchNorm and dropout in inference mode."""
    count = len(feed["l"] if isinstance(feed, dict) else feed)

    def part(start):
        if isinstance(feed, dict):
            return {name: value[start : start + batch_size] for name, value in feed.items()}
        return feed[start : start + batch_size]

    outputs = [np.asarray(colorizer(part(i), training=False), np.float32) for i in range(0, count, batch_size)]
    return np.concatenate(outputs)


def colorize_lab(colorizer: keras.Model, rgb: np.ndarray, size=None, hints=None, reference=None) -> np.ndarray:
    """Lab of the colorized ``rgb`` ([H, W, 3] in [0, 1]; a colour photo is made gray first),
    before any gamut clipping (the out-of-gamut metric needs it).

    The network sees L resized to ``size`` (its working size by default); its ab
    is resized back to H x W and joined with the original L. ``hints`` (local
    hints in this image's pixel coordinates, see ``colorkit.hints``) and
    ``reference`` (an RGB image whose colour distribution is the global hint)
    need a model trained with hints."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ColorkitError(f"expected an RGB image of shape [H, W, 3], got {rgb.shape}")
    height, width = rgb.shape[:2]
    size = size or working_size(colorizer)
    l_full = color.rgb_to_lab(tf.constant(rgb))[..., :1]
    l_small = tf.image.resize(l_full, size, method="area", antialias=True)
    feed = hint_feed(colorizer, color.normalize_l(l_small).numpy()[None], (height, width), size, hints, reference)
    ab_norm = predict_ab(colorizer, feed)[0]
    ab_full = tf.image.resize(color.denormalize_ab(ab_norm), (height, width), method="bilinear")
    return tf.concat([l_full, ab_full], axis=-1).numpy()


def hint_feed(colorizer, l_norm, image_size, size, hints=None, reference=None):
    """The model's inputs for one image: L alone, or L with its hints rasterised at
    the working ``size`` (``image_size`` is the hints' coordinate frame)."""
    from colorkit import hints as hint_tools

    hint_ab = hint_mask = hist = None
    if hints:
        hint_ab, hint_mask = hint_tools.hint_maps(hints, *image_size, *size)
        hint_ab, hint_mask = hint_ab[None], hint_mask[None]
    if reference is not None:
        if isinstance(reference, (str, Path)):
            from colorkit.data.decode import load_rgb

            reference = load_rgb(reference)
        hist = hint_tools.ab_histogram(reference)[None]
    return hint_tools.model_feed(colorizer, l_norm, hint_ab, hint_mask, hist)


def colorize_rgb(colorizer: keras.Model, rgb: np.ndarray, size=None, hints=None, reference=None) -> np.ndarray:
    """Colorize one RGB image: same size, same L, ab clipped into the sRGB gamut."""
    return color.lab_to_rgb(colorize_lab(colorizer, rgb, size, hints, reference))


def colorize(model: keras.Model, image, hints=None, reference=None, size=None) -> np.ndarray:
    """Colorize ``image`` (an RGB array of any size, or a file path) -> RGB array of the same size.

    ``hints``: local hints (a list of ``{"x", "y", "rgb" or "ab", "size"}`` or
    its JSON text; see ``colorkit.hints``); ``reference``: an RGB array or file
    whose colours are the global hint. Both need a model trained with hints."""
    if isinstance(image, (str, Path)):
        from colorkit.data.pipeline import load_rgb

        image = load_rgb(image)
    return colorize_rgb(as_colorizer(model), image, size=size, hints=hints, reference=reference)

"""A PyTorch state dict into a Keras network built by ``networks.py``: names, shapes, layouts.

Every layer with weights is named after the PyTorch module it stands for, so
its tensors are ``<layer name>.<tensor>``; only the tensor names differ:

    Keras variable     PyTorch tensor   layout change
    kernel             weight           conv [out, in, h, w] -> [h, w, in, out]
                                        transposed conv [in, out, h, w] -> [h, w, out, in]
    bias / gamma       bias / weight
    beta               bias
    moving_mean        running_mean
    moving_variance    running_var

Both kernel changes are the same transpose (2, 3, 1, 0). A BatchNorm's
``num_batches_tracked`` (a training counter; files from before PyTorch 0.4.1
lack it) may be present and is not used. Before any weight is set, every name
and shape in the file is checked against the network: a file for another
network, a truncated or edited one, gives one line listing what is wrong.
"""

from __future__ import annotations

import keras
import numpy as np

from colorkit.errors import ColorkitError

_TORCH_NAMES = {
    "kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
    "moving_mean": "running_mean", "moving_variance": "running_var",
}
#: PyTorch's [out, in, h, w] (transposed conv: [in, out, h, w]) -> Keras' [h, w, in, out] ([h, w, out, in]).
KERNEL_TO_KERAS = (2, 3, 1, 0)
#: How many names one error line lists before saying "and N more".
_LISTED = 4


def torch_name(layer: keras.Layer, variable) -> str:
    """The state-dict key of one of ``layer``'s variables."""
    return f"{layer.name}.{_TORCH_NAMES[variable.name]}"


def torch_shape(keras_shape) -> tuple:
    """The PyTorch shape of a tensor that has ``keras_shape`` in Keras."""
    shape = tuple(keras_shape)
    return tuple(shape[KERNEL_TO_KERAS.index(axis)] for axis in range(4)) if len(shape) == 4 else shape


def to_keras(array: np.ndarray) -> np.ndarray:
    """A PyTorch tensor in Keras' layout, float32."""
    array = array.transpose(KERNEL_TO_KERAS) if array.ndim == 4 else array
    return np.ascontiguousarray(array, np.float32)


def expected_tensors(model: keras.Model) -> dict[str, tuple]:
    """Every tensor the network needs: state-dict key -> PyTorch shape."""
    return {torch_name(layer, variable): torch_shape(variable.shape)
            for layer in model.layers for variable in layer.weights}


def optional_tensors(model: keras.Model, unused: dict | None = None) -> dict[str, tuple]:
    """Tensors a released file may hold that the network does not use: key -> shape."""
    counters = {f"{layer.name}.num_batches_tracked": () for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)}
    return {**counters, **(unused or {})}


def _few(names) -> str:
    names = list(names)
    more = f" (and {len(names) - _LISTED} more)" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def check_state_dict(state: dict, model: keras.Model, source: str, unused: dict | None = None) -> None:
    """Raise one ``ColorkitError`` line unless ``state`` holds exactly ``model``'s tensors
    (plus any of ``optional_tensors``), each of the right shape, finite numbers."""
    needed, optional = expected_tensors(model), optional_tensors(model, unused)
    known = {**optional, **needed}
    problems = []
    missing = [name for name in needed if name not in state]
    if missing:
        problems.append(f"{len(missing)} tensors missing: {_few(missing)}")
    unknown = [name for name in state if name not in known]
    if unknown:
        problems.append(f"{len(unknown)} unknown tensors: {_few(unknown)}")
    wrong = [f"{name} is {list(state[name].shape)}, not {list(shape)}"
             for name, shape in known.items() if name in state and state[name].shape != shape]
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape: {_few(wrong)}")
    not_numbers = [name for name in needed if name in state and not (
        np.issubdtype(state[name].dtype, np.floating) and np.isfinite(state[name]).all())]
    if not_numbers:
        problems.append(f"{len(not_numbers)} not finite floating-point numbers: {_few(not_numbers)}")
    if problems:
        raise ColorkitError(f"{source} does not hold the {model.name} weights: {'; '.join(problems)}")


def assign(model: keras.Model, state: dict, source: str, unused: dict | None = None) -> keras.Model:
    """Check ``state`` (``check_state_dict``) and set every weight of ``model`` from it."""
    check_state_dict(state, model, source, unused)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([to_keras(state[torch_name(layer, variable)]) for variable in layer.weights])
    return model

"""Weight penalties added to the loss: L1, L2 and their sum (elastic net).

Same formulas, defaults, validation and `get_config` as Keras's `L1`, `L2` and `L1L2`. Pass
one as `kernel_regularizer=` (or `bias_regularizer=`) of a layer: the penalty of the weight
appears in `layer.losses` and the trainer adds it to the loss, so its gradient
(`l1 * sign(W)`, `2 * l2 * W`) joins the data gradient.
"""

import math
import numbers

import keras
from keras import ops

__all__ = ["ElasticNet", "L1", "L2"]

_serializable = keras.saving.register_keras_serializable(package="study")


def _validate_factor(value, name):
    """A finite, non-negative number, returned as a Python float (Keras's validate_float_arg).

    Slightly wider than Keras, which takes only `int`/`float`: any real number (a NumPy
    scalar from a random search) is accepted; `bool` is refused as a likely mistake.
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise ValueError(
            f"Invalid value for argument {name}: expected a finite non-negative float. "
            f"Received: {name}={value!r}"
        )
    return float(value)


@_serializable
class L1(keras.regularizers.Regularizer):
    """L1 (lasso) penalty: loss = l1 * sum(|W|).

    Its gradient `l1 * sign(W)` pulls every weight toward 0 by the same amount, so small
    weights reach exactly 0: L1 makes the weights sparse.

    Keras's `L1` keeps `l1` as a float32 tensor, so its config reads 0.009999999776482582
    for 0.01; here it is the Python float, as in Keras's `L2` and `L1L2`. The penalty on a
    float32 weight is the same.

    Args:
        l1: the factor, a finite non-negative float (`None` means the default 0.01).
    """

    def __init__(self, l1=0.01):
        self.l1 = _validate_factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return ops.cast(self.l1, dtype=x.dtype) * ops.sum(ops.absolute(x))

    def get_config(self):
        return {"l1": self.l1}


@_serializable
class L2(keras.regularizers.Regularizer):
    """L2 (ridge, weight-decay) penalty: loss = l2 * sum(W^2), with no 1/2.

    Its gradient is `2 * l2 * W`: the weight shrinks in proportion to its size.

    Differs from the lecture notes / DLFS: their weight decay adds `0.5 * lambda * ||W||^2`
    (gradient `lambda * W`), so their `lambda` is `L2(lambda / 2)` here and in Keras. It also
    differs from an optimizer's decoupled `weight_decay`, which shrinks `W` directly and
    stays out of the loss (and of momentum / adaptive scaling).

    Args:
        l2: the factor, a finite non-negative float (`None` means the default 0.01).
    """

    def __init__(self, l2=0.01):
        self.l2 = _validate_factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return ops.cast(self.l2, dtype=x.dtype) * ops.sum(ops.square(x))

    def get_config(self):
        return {"l2": self.l2}


@_serializable
class ElasticNet(keras.regularizers.Regularizer):
    """Elastic-net penalty, L1 plus L2: loss = l1 * sum(|W|) + l2 * sum(W^2).

    Keras's `L1L2` under the notes' name. A zero factor drops its term; both default to 0, so
    `ElasticNet()` adds nothing, like `L1L2()`. (Keras's docstring says the string form
    defaults to 0.01 each, but `keras.regularizers.get("l1l2")` gives 0 and 0, and "l1_l2"
    is not recognized.) The L2 term has no 1/2: the notes' / DLFS `0.5 * lambda * ||W||^2`
    is `l2 = lambda / 2`.

    Args:
        l1: L1 factor, a finite non-negative float (`None` means 0).
        l2: L2 factor, a finite non-negative float (`None` means 0).
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate_factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _validate_factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        # Same order of operations as L1L2, so the float32 results are identical.
        penalty = ops.convert_to_tensor(0.0, dtype=x.dtype)
        if self.l1 != 0.0:
            penalty += ops.cast(self.l1, dtype=x.dtype) * ops.sum(ops.absolute(x))
        if self.l2 != 0.0:
            penalty += ops.cast(self.l2, dtype=x.dtype) * ops.sum(ops.square(x))
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

"""Weight constraints: projections the optimizer applies to a weight after every update.

Used as `kernel_constraint=` of a layer. The optimizer runs `w.assign(constraint(w))` after
each step (after the update and any EMA), so the layer never sees an unconstrained weight in
training; the initial weights are *not* projected.
"""

import math
import numbers

import keras
from keras import ops

__all__ = ["MaxNorm"]

_serializable = keras.saving.register_keras_serializable(package="study")


@_serializable
class MaxNorm(keras.constraints.Constraint):
    """Max-norm: rescale each weight vector whose L2 norm exceeds max_value back to max_value.

    With `M = max_value`, `eps = keras.config.epsilon()` (1e-7 by default) and the norm taken
    over `axis` (kept for broadcasting):

        n = sqrt(sum_axis W^2)
        W <- W * clip(n, 0, M) / (eps + n)

    So a vector with `n > M` comes out with norm `M * n / (eps + n)` (= M up to 1e-7
    relative). Because of `eps` a vector with `n <= M` is *also* changed, by the factor
    `n / (eps + n)`: very slightly, unless its norm is tiny. Keras does exactly the same.

    For a `Dense` kernel `(in, units)`, `axis=0` bounds each unit's incoming weight vector;
    for a channels-last conv kernel `(kh, kw, in, filters)` use `axis=[0, 1, 2]` to bound
    each filter.

    Args:
        max_value: the largest allowed norm M, a non-negative number.
        axis: int or list of ints, the axes the norm is taken over.
    """

    def __init__(self, max_value=2, axis=0):
        # Keras does not check; a bad M would otherwise surface only at the first step.
        if (isinstance(max_value, bool) or not isinstance(max_value, numbers.Real)
                or math.isnan(max_value) or max_value < 0):
            raise ValueError(
                f"Argument `max_value` must be a non-negative number. Received: {max_value!r}"
            )
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = ops.convert_to_tensor(w)
        norms = ops.sqrt(ops.sum(ops.square(w), axis=self.axis, keepdims=True))
        desired = ops.clip(norms, 0, self.max_value)
        return ops.cast(w, norms.dtype) * (desired / (keras.config.epsilon() + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}

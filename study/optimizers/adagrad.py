import keras
from keras import ops

from study.optimizers._checks import check_non_negative


@keras.saving.register_keras_serializable(package="study")
class AdaGrad(keras.optimizers.Optimizer):
    """AdaGrad: per-weight step sizes that shrink with the sum of squared past gradients.

    Update rule, gradient g, learning rate lr, accumulator h (starts at
    h0 = `initial_accumulator_value`), epsilon eps:

    ```
    h <- h + g * g
    w <- w - lr * g / sqrt(h + eps)             # epsilon_outside_root=False (Keras)
    w <- w - lr * g / (sqrt(h) + eps)           # epsilon_outside_root=True (DLFS)
    ```

    The default equals `keras.optimizers.Adagrad` exactly, and seed 000's formula
    (`w <- w - eta / sqrt(G + eps) * g`, epsilon inside the root).

    DLFS / seed 001 (`common/optimizer.py`) writes `h += g*g; w -= lr * g / (sqrt(h) + 1e-7)`
    with h starting at 0 and lr 0.01: that is
    `AdaGrad(0.01, initial_accumulator_value=0.0, epsilon_outside_root=True)`, equal to the
    book's NumPy code to float64 round-off over 20 steps (`tests/components/test_optimizers.py::
    test_book_option_equals_the_book_in_float64`). The option changes only where eps sits;
    measured against the default (`test_adagrad_gap_to_dlfs`): Keras's h0 = 0.1 damps the
    first steps (24% of the displacement after 20 steps at lr 0.01); with h0 = 0 the two
    placements agree to ~1e-7 on unit gradients, but on gradients near 1e-6, where sqrt(h)
    is comparable to eps, they part by 99.5%.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.001` (Keras).
        initial_accumulator_value: float >= 0; defaults to `0.1` (Keras).
        epsilon: float >= 0; defaults to `1e-7`.
        epsilon_outside_root: bool; add `epsilon` to `sqrt(h)` (DLFS) instead of to `h`
            under the root (Keras); defaults to `False`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 epsilon_outside_root=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value)
        self.epsilon = check_non_negative("epsilon", epsilon)
        if not isinstance(epsilon_outside_root, bool):
            raise ValueError(f"`epsilon_outside_root` must be true or false. "
                             f"Received: epsilon_outside_root={epsilon_outside_root!r}")
        self.epsilon_outside_root = epsilon_outside_root

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator",
            initializer=keras.initializers.Constant(self.initial_accumulator_value))

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        h = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(h, ops.square(g))
        if self.epsilon_outside_root:
            denominator = ops.add(ops.sqrt(h), self.epsilon)
        else:
            denominator = ops.sqrt(ops.add(h, self.epsilon))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, g), denominator))

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value,
                       "epsilon": self.epsilon,
                       "epsilon_outside_root": self.epsilon_outside_root})
        return config

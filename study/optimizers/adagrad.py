import keras
from keras import ops

from study.optimizers._checks import check_non_negative


@keras.saving.register_keras_serializable(package="study")
class AdaGrad(keras.optimizers.Optimizer):
    """AdaGrad: per-weight step sizes that shrink with the sum of squared past gradients.

    Update rule, accumulator h (starts at h0 = `initial_accumulator_value`):

    ```
    h <- h + g * g
    w <- w - lr * g / sqrt(h + eps)
    ```

    Equals `keras.optimizers.Adagrad` exactly, and seed 000's formula
    (`w <- w - eta / sqrt(G + eps) * g`, epsilon inside the root).

    Differs from DLFS / seed 001 (`h0 = 0`, `w -= lr * g / (sqrt(h) + 1e-7)`,
    epsilon outside the root, default lr 0.01): Keras starts the accumulator at
    0.1, which damps the first steps; with `initial_accumulator_value=0.0` the two
    agree to ~1e-7 for ordinary gradients, but for gradients near 1e-6 the epsilon
    placement dominates and they part by whole percents. `tests/components/
    test_optimizers.py::test_adagrad_gap_to_dlfs` measures both gaps.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.001` (Keras).
        initial_accumulator_value: float >= 0; defaults to `0.1` (Keras).
        epsilon: float >= 0 added inside the square root; defaults to `1e-7`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value)
        self.epsilon = check_non_negative("epsilon", epsilon)

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
        self.assign_sub(variable, ops.divide(ops.multiply(lr, g), ops.sqrt(ops.add(h, self.epsilon))))

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value,
                       "epsilon": self.epsilon})
        return config

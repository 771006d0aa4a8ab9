"""Lion, an optimizer of your own: a study names it as "examples.lion:Lion"."""

import keras
from keras import ops


class Lion(keras.optimizers.Optimizer):
    """Lion (EvoLved Sign Momentum): the sign of an interpolated momentum as the step.

    Update rule (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms", Alg. 2;
    m starts at 0, weight decay left to Keras's base class):

    ```
    c <- beta_1 * m + (1 - beta_1) * g
    w <- w - lr * sign(c)
    m <- beta_2 * m + (1 - beta_2) * g
    ```

    Every coordinate moves by exactly lr (or 0), so the paper advises a learning rate 3-10x
    smaller than AdamW's. Equals `keras.optimizers.Lion` op for op; optax's `lion` is the same
    rule. Written here as the example of an own optimizer: a `keras.optimizers.Optimizer`
    subclass with `build`, `update_step` and a `get_config` that round-trips.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not (0 <= beta_1 <= 1 and 0 <= beta_2 <= 1):
            raise ValueError(f"beta_1 and beta_2 must be in [0, 1]; got {beta_1}, {beta_2}")
        self.beta_1, self.beta_2 = beta_1, beta_2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        beta_1 = ops.cast(self.beta_1, variable.dtype)  # 1 - beta in float32, as Keras's
        beta_2 = ops.cast(self.beta_2, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        c = ops.add(ops.multiply(m, beta_1), ops.multiply(g, 1.0 - beta_1))
        self.assign_sub(variable, ops.multiply(lr, ops.sign(c)))
        self.assign(m, ops.add(ops.multiply(m, beta_2), ops.multiply(g, 1.0 - beta_2)))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config

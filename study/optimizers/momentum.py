import keras
from keras import ops

from study.optimizers._checks import check_fraction


@keras.saving.register_keras_serializable(package="study")
class Momentum(keras.optimizers.Optimizer):
    """SGD with momentum (heavy ball), or Nesterov's accelerated gradient with nesterov=True.

    Update rule, velocity v (starts at 0), momentum mu:

    ```
    v <- mu * v - lr * g
    w <- w + v                       # momentum
    w <- w + mu * v - lr * g         # nesterov=True, with the new v
    ```

    Equals `keras.optimizers.SGD(learning_rate, momentum, nesterov)` exactly, and
    the lecture notes' form (seed 000: `v <- alpha v - eta dL/dW; W <- W + v`, worked
    example lr 0.1, alpha 0.9, gradients 5 then 3: v1 = -0.5, v2 = -0.75; DLFS
    `Momentum`). DLFS's `Nesterov` writes `w += mu^2 v - (1 + mu) lr g` with the old
    v, which is the same update rearranged.

    Differs from optax and PyTorch, which keep `m <- mu m + g` and step `-lr m`:
    identical for a constant learning rate, not when lr changes during training.

    Weight decay: `weight_decay=` is Keras's decoupled `w <- w - lr * wd * w` before
    the step; seed 004's "momentum SGD with weight decay" (`V <- mu V - lr (g + lambda W)`)
    is L2 in the loss instead: use `kernel_regularizer=study.regularizers.L2(lambda / 2)`.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.01`.
        momentum: float in [0, 1]; defaults to `0.9` (DLFS's default; Keras's SGD
            defaults to 0.0, which is plain `SGD`).
        nesterov: bool; defaults to `False`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = check_fraction("momentum", momentum)
        self.nesterov = bool(nesterov)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Keras's SGD calls this slot "momentum"; the same name keeps .keras files interchangeable.
        self._velocities = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        mu = ops.cast(self.momentum, variable.dtype)
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(v, ops.subtract(ops.multiply(v, mu), ops.multiply(g, lr)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(v, mu), ops.multiply(g, lr)))
        else:
            self.assign_add(variable, v)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="study")
class SGD(keras.optimizers.Optimizer):
    """Plain (mini-batch) stochastic gradient descent: w <- w - lr * g.

    Update rule, with g the gradient of the loss on the current mini-batch:

    ```
    w <- w - lr * g
    ```

    Equals `keras.optimizers.SGD(learning_rate)` with its default `momentum=0.0`,
    DLFS `SGD` and seed 000's `w+ = w - eta * dE/dw`. Keras's SGD also carries the
    momentum technique behind `momentum=`/`nesterov=`; here that technique is its own
    class, `study.optimizers.Momentum`, so `SGD(momentum=...)` is an error rather
    than a silent change of method.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.01` (as Keras and DLFS).
        **kwargs: Keras's base optimizer arguments (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`, `name`), handled by the base class.
    """

    def __init__(self, learning_rate=0.01, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        self.assign_sub(variable, ops.multiply(g, lr))

    def get_config(self):
        return super().get_config()

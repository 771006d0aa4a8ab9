import keras
from keras import ops

from study.optimizers._checks import check_fraction, check_non_negative


@keras.saving.register_keras_serializable(package="study")
class RMSProp(keras.optimizers.Optimizer):
    """RMSProp: divide each step by a moving root-mean-square of recent gradients.

    Update rule, moving average of squared gradients s (starts at 0), decay rho:

    ```
    s <- rho * s + (1 - rho) * g * g
    d <- s + eps                                # centered=False
    a <- rho * a + (1 - rho) * g                # centered=True: variance, not 2nd moment
    d <- s - a * a + eps
    u <- lr * g / sqrt(d)
    w <- w - u                                  # momentum = 0
    m <- momentum * m + u;  w <- w - m          # momentum > 0
    ```

    Equals `keras.optimizers.RMSprop` exactly, and seed 000's formula
    (`G <- gamma G + (1 - gamma) g^2`, `w <- w - eta / sqrt(G + eps) * g`).

    Differs from DLFS / seed 001 (`decay_rate=0.99`, lr 0.01, `1e-7` outside the
    root: `w -= lr g / (sqrt(s) + 1e-7)`); with the same rho and lr the two agree
    closely unless gradients are tiny, where the epsilon placement dominates
    (measured in `test_rmsprop_gap_to_dlfs`). optax's `rmsprop` uses eps 1e-8.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.001` (Keras).
        rho: float in [0, 1]; decay of the moving average; defaults to `0.9`.
        momentum: float in [0, 1]; defaults to `0.0`.
        epsilon: float >= 0 added inside the square root; defaults to `1e-7`.
        centered: bool; normalise by the estimated variance; defaults to `False`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_fraction("rho", rho)
        self.momentum = check_fraction("momentum", momentum)
        self.epsilon = check_non_negative("epsilon", epsilon)
        self.centered = bool(centered)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._mean_squares = self.add_optimizer_variables(var_list, "velocity")
        # Variables exist only for the options in use, as in Keras, so that .keras
        # files of ours and of the built-in hold the same optimizer variables.
        self._momentums = (self.add_optimizer_variables(var_list, "momentum")
                           if self.momentum > 0 else [])
        self._mean_gradients = (self.add_optimizer_variables(var_list, "average_gradient")
                                if self.centered else [])

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        rho = self.rho
        s = self._mean_squares[index]
        self.assign(s, ops.add(ops.multiply(rho, s), ops.multiply(1 - rho, ops.square(g))))
        if self.centered:
            a = self._mean_gradients[index]
            self.assign(a, ops.add(ops.multiply(rho, a), ops.multiply(1 - rho, g)))
            denominator = s - ops.square(a) + self.epsilon
        else:
            denominator = ops.add(s, self.epsilon)
        increment = ops.divide(ops.multiply(lr, g), ops.sqrt(denominator))
        if self.momentum > 0:
            m = self._momentums[index]
            self.assign(m, ops.add(ops.multiply(self.momentum, m), increment))
            self.assign_sub(variable, m)
        else:
            self.assign_sub(variable, increment)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum,
                       "epsilon": self.epsilon, "centered": self.centered})
        return config

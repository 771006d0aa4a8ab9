import keras
from keras import ops

from study.optimizers._checks import check_fraction, check_non_negative


@keras.saving.register_keras_serializable(package="study")
class RMSProp(keras.optimizers.Optimizer):
    """RMSProp: divide each step by a moving root-mean-square of recent gradients.

    Update rule, gradient g, learning rate lr, moving average of squared gradients s
    (starts at 0), decay rho, epsilon eps:

    ```
    s <- rho * s + (1 - rho) * g * g
    d <- s                                      # centered=False
    a <- rho * a + (1 - rho) * g                # centered=True: variance, not 2nd moment
    d <- s - a * a
    u <- lr * g / sqrt(d + eps)                 # epsilon_outside_root=False (Keras)
    u <- lr * g / (sqrt(d) + eps)               # epsilon_outside_root=True (DLFS)
    w <- w - u                                  # momentum = 0
    m <- momentum * m + u;  w <- w - m          # momentum > 0
    ```

    The default equals `keras.optimizers.RMSprop` exactly, and seed 000's formula
    (`G <- gamma G + (1 - gamma) g^2`, `w <- w - eta / sqrt(G + eps) * g`).

    DLFS / seed 001 (`common/optimizer.py`) writes `h *= decay; h += (1 - decay) g*g;
    w -= lr g / (sqrt(h) + 1e-7)` with decay 0.99 and lr 0.01: that is
    `RMSProp(0.01, rho=0.99, epsilon_outside_root=True)`, equal to the book's NumPy code to
    float64 round-off over 20 steps (`tests/components/test_optimizers.py::
    test_book_option_equals_the_book_in_float64`). The option changes only where eps sits;
    measured against the default at the same rho and lr (`test_rmsprop_gap_to_dlfs`):
    4.5e-5 apart on unit gradients, 99.5% apart on gradients of 1e-5, where sqrt(s) is
    comparable to eps. optax's `rmsprop` uses eps 1e-8.

    Args:
        learning_rate: float, schedule or callable; defaults to `0.001` (Keras).
        rho: float in [0, 1]; decay of the moving average; defaults to `0.9`.
        momentum: float in [0, 1]; defaults to `0.0`.
        epsilon: float >= 0; defaults to `1e-7`.
        centered: bool; normalise by the estimated variance; defaults to `False`.
        epsilon_outside_root: bool; add `epsilon` to `sqrt(d)` (DLFS) instead of to `d`
            under the root (Keras); defaults to `False`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, epsilon_outside_root=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_fraction("rho", rho)
        self.momentum = check_fraction("momentum", momentum)
        self.epsilon = check_non_negative("epsilon", epsilon)
        self.centered = bool(centered)
        if not isinstance(epsilon_outside_root, bool):
            raise ValueError(f"`epsilon_outside_root` must be true or false. "
                             f"Received: epsilon_outside_root={epsilon_outside_root!r}")
        self.epsilon_outside_root = epsilon_outside_root

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
            second_moment = s - ops.square(a)
        else:
            second_moment = s
        if self.epsilon_outside_root:
            # The centered variance s - a*a is >= 0 but may round to a tiny negative, whose
            # root would be NaN; under the root (the default) eps covers that.
            root = ops.add(ops.sqrt(ops.maximum(second_moment, 0.0)), self.epsilon)
        else:
            root = ops.sqrt(ops.add(second_moment, self.epsilon))
        increment = ops.divide(ops.multiply(lr, g), root)
        if self.momentum > 0:
            m = self._momentums[index]
            self.assign(m, ops.add(ops.multiply(self.momentum, m), increment))
            self.assign_sub(variable, m)
        else:
            self.assign_sub(variable, increment)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum,
                       "epsilon": self.epsilon, "centered": self.centered,
                       "epsilon_outside_root": self.epsilon_outside_root})
        return config

import keras
from keras import ops

from study.optimizers._checks import check_fraction, check_non_negative


@keras.saving.register_keras_serializable(package="study")
class Adam(keras.optimizers.Optimizer):
    """Adam: momentum plus RMSProp scaling, with bias correction of both averages.

    Update rule at step t = 1, 2, ... (m and v start at 0):

    ```
    m <- m + (1 - beta_1) * (g - m)              # = beta_1 m + (1 - beta_1) g
    v <- v + (1 - beta_2) * (g * g - v)
    alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    w <- w - alpha_t * m / (sqrt(v) + eps_hat)
    amsgrad=True: v_max <- max(v_max, v) replaces v in the last line
    ```

    Equals `keras.optimizers.Adam` exactly and DLFS `Adam` (seed 001), both the
    "epsilon-hat" form that Kingma & Ba give just before their section 2.1.

    Differs from the paper's Algorithm 1, optax and PyTorch, which write
    `w <- w - lr * m_hat / (sqrt(v_hat) + eps)` with `m_hat = m / (1 - beta_1^t)`,
    `v_hat = v / (1 - beta_2^t)` (default eps 1e-8), and from seed 000's
    `w <- w - lr * m_hat / sqrt(v_hat + eps)` (epsilon inside the root). The forms
    are equal when eps = 0; with eps 1e-7 they differ by ~1e-7 relative for
    ordinary gradients and by percents when gradients are ~1e-7
    (`test_adam_gap_to_textbook` measures it).

    Args:
        learning_rate: float, schedule or callable; defaults to `0.001`.
        beta_1: float in [0, 1); decay of the first moment; defaults to `0.9`.
        beta_2: float in [0, 1); decay of the second moment; defaults to `0.999`.
        epsilon: float >= 0, the epsilon-hat above; defaults to `1e-7`.
        amsgrad: bool; use the running maximum of v; defaults to `False`.
        **kwargs: Keras's base optimizer arguments (see `study.optimizers.SGD`).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_fraction("beta_1", beta_1, closed_right=False)
        self.beta_2 = check_fraction("beta_2", beta_2, closed_right=False)
        self.epsilon = check_non_negative("epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._first_moments, self._second_moments = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])
        self._max_second_moments = (self.add_optimizer_variables(var_list, "velocity_hat")
                                    if self.amsgrad else [])

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        t = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), t)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), t)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        m = self._first_moments[index]
        v = self._second_moments[index]
        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
        if self.amsgrad:
            v_max = self._max_second_moments[index]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha),
                                             ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config

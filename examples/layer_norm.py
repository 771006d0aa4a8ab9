"""Layer normalisation, a layer of your own: a study names it as
"examples.layer_norm:LayerNormalization"."""

import keras
from keras import ops


class LayerNormalization(keras.layers.Layer):
    """Layer normalisation: each sample normalised over its own features, then scaled.

    For a sample x of d features (Ba, Kiros & Hinton, 2016, "Layer Normalization", eq. 4):

    ```
    mu = mean(x),  sigma^2 = mean((x - mu)^2)
    y = gamma * (x - mu) / sqrt(sigma^2 + epsilon) + beta       (gamma, beta: d learned)
    ```

    Unlike batch norm it uses no batch statistics, so training and inference compute the same
    function and a batch of one is fine. Equals `keras.layers.LayerNormalization` (epsilon
    1e-3 as its default) up to float32 rounding; PyTorch's `nn.LayerNorm` defaults to
    epsilon 1e-5. Written here as the example of an own layer: a `keras.layers.Layer` subclass
    with `build`, `call` and a `get_config` that round-trips.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive; got {epsilon}")
        self.epsilon = epsilon

    def build(self, input_shape):
        features = input_shape[-1]
        self.gamma = self.add_weight(shape=(features,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(features,), initializer="zeros", name="beta")

    def call(self, x):
        mean, variance = ops.moments(x, axes=[-1], keepdims=True)
        return self.gamma * (x - mean) / ops.sqrt(variance + self.epsilon) + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}

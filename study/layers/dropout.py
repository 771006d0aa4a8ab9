"""Dropout: inverted (Keras), or the book's non-inverted form."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="study")
class Dropout(keras.layers.Layer):
    """Inverted dropout layer: in training, zero each input with probability `rate`.

    Training (default, `inverted=True`): `y = m * x / (1 - p)`, with `p = rate` and an
    independent mask `m ~ Bernoulli(1 - p)` per element (or per element of `noise_shape`,
    broadcast over the rest), drawn as `m = (u >= p)` from `u ~ Uniform[0, 1)`. Kept values are
    scaled by `1 / (1 - p)` so that `E[y] = x`. Inference: `y = x` (identity).

    The mask is written from the formula with `keras.random.uniform` rather than calling
    `keras.random.dropout`, to show the rule; it is the same Bernoulli(1 - p) draw, and the
    uniform stream comes from a `keras.random.SeedGenerator(seed)` created here in `__init__`,
    which advances on every call (an unseeded random op would be frozen into a constant
    mask when JAX traces `fit`'s step function).

    `inverted=False` is DLFS's non-inverted `Dropout` (`common/layers.py`): training
    multiplies by the mask only, `y = m * x` (`E[y] = (1 - p) x`), and inference multiplies
    every output by the keep probability, `y = (1 - p) x`. With one mask the book's output is
    the inverted one times `1 - p`, in training and at inference alike (0.8 at the book's ratio
    0.2): the same network up to that factor on the next layer's input, which its kernel can
    absorb, but the next layer's gradients scale by it too, so training differs. The mask is
    drawn the same way in both forms (DLFS keeps `u > p`, we keep `u >= p`, which differs only
    when a uniform equals `p` exactly); `tests/components/test_layers.py::
    test_book_dropout_equals_the_book_in_float64` checks the option against DLFS's NumPy code.
    The default equals `keras.layers.Dropout` in its arguments and statistics.

    Args:
        rate: Float in [0, 1), the probability `p` of dropping an element.
        noise_shape: Shape of the mask, broadcast against the input; `None` entries take the
            input's size (e.g. `(None, 1, d)` shares one mask over the time axis).
        seed: Integer seed of the layer's `SeedGenerator`, or `None`.
        inverted: bool; `True` (Keras): scale by `1 / (1 - p)` in training, identity at
            inference; `False` (DLFS): mask only in training, scale by `1 - p` at inference.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, rate, noise_shape=None, seed=None, inverted=True, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"`rate` must be in [0, 1); received rate={rate!r}")
        if not isinstance(inverted, bool):
            raise ValueError(f"`inverted` must be true or false; received inverted={inverted!r}")
        self.inverted = inverted
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            if self.inverted or self.rate == 0:
                return inputs
            return ops.multiply(inputs, ops.cast(1.0 - self.rate, inputs.dtype))
        # DLFS's rule, `mask = rand(shape) > ratio`. The uniform is drawn in the input's dtype
        # (as TF's dropout does) but at least float32, so that float16's coarse grid does not
        # bias the keep probability.
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if dtype in ("float16", "bfloat16"):
            dtype = "float32"
        u = keras.random.uniform(self._mask_shape(inputs), seed=self.seed_generator, dtype=dtype)
        keep = ops.greater_equal(u, self.rate)
        keep = ops.broadcast_to(keep, ops.shape(inputs))
        kept = inputs / (1.0 - self.rate) if self.inverted else inputs
        return ops.where(keep, kept, ops.zeros_like(inputs))

    def _mask_shape(self, inputs):
        shape = ops.shape(inputs)
        if self.noise_shape is None:
            return shape
        return tuple(shape[i] if dim is None else dim for i, dim in enumerate(self.noise_shape))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "inverted": self.inverted,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}

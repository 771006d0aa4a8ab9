"""A throw-away layer registered at test time, and broken own components for the error tests."""

import keras


class ScaleBy(keras.layers.Layer):
    """Multiplies its input by a fixed factor (a layer no study or engine module names)."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class NotALayer:
    """A class that subclasses no Keras base."""


class NoConfig(keras.layers.Layer):
    """Writes its argument under another name in get_config: from_config cannot read it."""

    def __init__(self, width=3, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def call(self, x):
        return x

    def get_config(self):
        return {**super().get_config(), "size": self.width}


def mish(x, beta=1.0):
    """An activation function of your own: x tanh(softplus(beta x)) / beta."""
    return x * keras.ops.tanh(keras.ops.softplus(beta * x)) / beta

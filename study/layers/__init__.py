"""Layers of the lecture notes: the affine layer, activations, dropout, batch norm, ResNet block.

Every class is a `keras.layers.Layer` registered as `"study>ClassName"`.
"""

from study.layers.activation_layers import (
    ELU,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Step,
    Swish,
    Tanh,
)
from study.layers.affine import Affine
from study.layers.batch_normalization import BatchNormalization
from study.layers.dropout import Dropout
from study.layers.prelu import PReLU
from study.layers.residual import ResidualBlock

__all__ = [
    "Affine", "Step", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "PReLU", "Swish",
    "Softplus", "Softmax", "Dropout", "BatchNormalization", "ResidualBlock",
]

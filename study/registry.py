"""The one table of components: configs, tests, `study list` and the README read it.

Each entry maps a short config name (`"adam"`, `"he_normal"`, `"leaky_relu"`)
to this library's component and to the Keras built-in of the same technique,
so a study can put `"adam"` beside `"keras.adam"` as a control. Adding a
technique is one new module and one `Component(...)` line below.

Names of the form `"keras.<name>"` resolve to the built-in counterpart listed
here, or else to whatever Keras itself knows by `<name>` (`"keras.nadam"`,
`"keras.variance_scaling"`), so every Keras built-in can serve as a control.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from study import activations, constraints, initializers, layers
from study import optimizers, regularizers

KINDS = ("optimizer", "initializer", "regularizer", "constraint", "activation", "layer")
KERAS_PREFIX = "keras."


class UnknownComponentError(ValueError):
    """A config names a component the registry does not know."""

    def __init__(self, kind: str, name: str, suggestion: str | None):
        self.kind, self.name, self.suggestion = kind, name, suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"{name!r} is not an {kind}{hint}" if kind[0] in "aeiou"
                         else f"{name!r} is not a {kind}{hint}")


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    keras: Callable[..., Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        doc = (self.factory.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def create(self, **kwargs: Any) -> Any:
        return self.factory(**{**self.defaults, **kwargs})

    def create_keras(self, **kwargs: Any) -> Any:
        if self.keras is None:
            raise UnknownComponentError(self.kind, KERAS_PREFIX + self.name, None)
        return self.keras(**{**self.defaults, **kwargs})


def _activation_layer(name: str) -> Callable[..., keras.layers.Layer]:
    return functools.partial(keras.layers.Activation, name)


_P = functools.partial
_K = keras
COMPONENTS: tuple[Component, ...] = (
    # optimizers
    Component("optimizer", "sgd", optimizers.SGD, _K.optimizers.SGD),
    Component("optimizer", "momentum", optimizers.Momentum, _P(_K.optimizers.SGD, momentum=0.9)),
    Component("optimizer", "nesterov", optimizers.Momentum, _P(_K.optimizers.SGD, momentum=0.9),
              defaults={"nesterov": True}),
    Component("optimizer", "adagrad", optimizers.AdaGrad, _K.optimizers.Adagrad),
    Component("optimizer", "rmsprop", optimizers.RMSProp, _K.optimizers.RMSprop),
    Component("optimizer", "adam", optimizers.Adam, _K.optimizers.Adam),
    # initializers
    Component("initializer", "zeros", initializers.Zeros, _K.initializers.Zeros),
    Component("initializer", "ones", initializers.Ones, _K.initializers.Ones),
    Component("initializer", "constant", initializers.Constant, _K.initializers.Constant),
    Component("initializer", "identity", initializers.Identity, _K.initializers.Identity),
    Component("initializer", "orthogonal", initializers.Orthogonal, _K.initializers.Orthogonal),
    Component("initializer", "random_uniform", initializers.RandomUniform, _K.initializers.RandomUniform),
    Component("initializer", "random_normal", initializers.RandomNormal, _K.initializers.RandomNormal),
    Component("initializer", "truncated_normal", initializers.TruncatedNormal,
              _K.initializers.TruncatedNormal),
    Component("initializer", "lecun_uniform", initializers.LecunUniform, _K.initializers.LecunUniform),
    Component("initializer", "lecun_normal", initializers.LecunNormal, _K.initializers.LecunNormal),
    Component("initializer", "glorot_uniform", initializers.GlorotUniform, _K.initializers.GlorotUniform),
    Component("initializer", "glorot_normal", initializers.GlorotNormal, _K.initializers.GlorotNormal),
    Component("initializer", "he_uniform", initializers.HeUniform, _K.initializers.HeUniform),
    Component("initializer", "he_normal", initializers.HeNormal, _K.initializers.HeNormal),
    Component("initializer", "variance_scaling", initializers.VarianceScaling,
              _K.initializers.VarianceScaling),
    # regularizers and constraints
    Component("regularizer", "l1", regularizers.L1, _K.regularizers.L1),
    Component("regularizer", "l2", regularizers.L2, _K.regularizers.L2),
    Component("regularizer", "elastic_net", regularizers.ElasticNet, _K.regularizers.L1L2),
    Component("constraint", "max_norm", constraints.MaxNorm, _K.constraints.MaxNorm),
    # activations, as layers so that PReLU's learned slope fits the same slot
    Component("activation", "step", layers.Step),
    Component("activation", "sigmoid", layers.Sigmoid, _activation_layer("sigmoid")),
    Component("activation", "tanh", layers.Tanh, _activation_layer("tanh")),
    Component("activation", "relu", layers.ReLU, _K.layers.ReLU),
    Component("activation", "leaky_relu", layers.LeakyReLU, _K.layers.LeakyReLU),
    Component("activation", "elu", layers.ELU, _K.layers.ELU),
    Component("activation", "prelu", layers.PReLU, _K.layers.PReLU),
    Component("activation", "swish", layers.Swish, _activation_layer("swish")),
    Component("activation", "softplus", layers.Softplus, _activation_layer("softplus")),
    Component("activation", "softmax", layers.Softmax, _K.layers.Softmax),
    # layers
    Component("layer", "affine", layers.Affine, _K.layers.Dense),
    Component("layer", "dropout", layers.Dropout, _K.layers.Dropout),
    Component("layer", "batch_norm", layers.BatchNormalization, _K.layers.BatchNormalization),
    Component("layer", "residual", layers.ResidualBlock),
)

_BY_KEY = {(c.kind, c.name): c for c in COMPONENTS}

# Keras's own lookup per kind, for "keras.<name>" names this table does not list.
_KERAS_GET: dict[str, Callable[[str], Any]] = {
    "optimizer": keras.optimizers.get,
    "initializer": keras.initializers.get,
    "regularizer": keras.regularizers.get,
    "constraint": keras.constraints.get,
}


def names(kind: str, include_keras: bool = True) -> list[str]:
    """Every config name of one kind, ours first, then the listed built-ins."""
    _check_kind(kind)
    ours = [c.name for c in COMPONENTS if c.kind == kind]
    builtins = [KERAS_PREFIX + c.name for c in COMPONENTS if c.kind == kind and c.keras]
    return ours + (builtins if include_keras else [])


def lookup(kind: str, name: str) -> Component:
    """The component called `name` (ours; strip "keras." for the entry of a built-in)."""
    _check_kind(kind)
    bare = name[len(KERAS_PREFIX):] if name.startswith(KERAS_PREFIX) else name
    try:
        return _BY_KEY[(kind, bare)]
    except KeyError:
        raise UnknownComponentError(kind, name, suggest(kind, name)) from None


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """A new instance of the component `name`; `"keras.<name>"` gives the built-in."""
    if not name.startswith(KERAS_PREFIX):
        return lookup(kind, name).create(**kwargs)
    entry = _BY_KEY.get((kind, name[len(KERAS_PREFIX):]))
    if entry is not None and entry.keras is not None:
        return entry.create_keras(**kwargs)
    return _create_keras_by_name(kind, name, kwargs)


def suggest(kind: str, name: str) -> str | None:
    close = difflib.get_close_matches(name, names(kind), n=1, cutoff=0.6)
    return close[0] if close else None


def _create_keras_by_name(kind: str, name: str, kwargs: dict[str, Any]) -> Any:
    bare = name[len(KERAS_PREFIX):]
    try:
        if kind == "activation":
            return keras.layers.Activation(keras.activations.get(bare), **kwargs)
        default = _KERAS_GET[kind](bare)
    except (KeyError, ValueError, TypeError):
        default = None
    if default is None:
        raise UnknownComponentError(kind, name, suggest(kind, name))
    return type(default)(**kwargs) if kwargs else default


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; one of {', '.join(KINDS)}")

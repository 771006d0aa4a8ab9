"""The one table of components: configs, tests, `study list` and the README read it.

Each entry maps a short config name (`"adam"`, `"he_normal"`, `"leaky_relu"`)
to this library's component and to the Keras built-in of the same technique,
so a study can put `"adam"` beside `"keras.adam"` as a control. Adding a
technique is one new module and one `Component(...)` line below; the engine
reads every kind from here, layers included (`[model] layers = [...]`).

Entries name their classes by import path ("study.optimizers.adam:Adam"), so reading the
table imports neither Keras nor TensorFlow: `study list --markdown` and study-file validation
stay light, and a class is imported the first time it is built.

A study file names a component in one of three ways (`study.engine.studies.components`
resolves them): a name of this table; `"keras.<name>"`, the built-in listed here or else
whatever Keras itself knows by `<name>` (`"keras.nadam"`, `"keras.variance_scaling"`); or
`"package.module:ClassName"`, your own class.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

KINDS = ("optimizer", "initializer", "regularizer", "constraint", "activation", "layer")
KERAS_PREFIX = "keras."
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class UnknownComponentError(ValueError):
    """A config names a component the registry does not know."""

    def __init__(self, kind: str, name: str, suggestion: str | None):
        self.kind, self.name, self.suggestion = kind, name, suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"{name!r} is not an {kind}{hint}" if kind[0] in "aeiou"
                         else f"{name!r} is not a {kind}{hint}")


def import_target(target: str) -> Any:
    """`"package.module:Name"` -> the object (imports the module)."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    target: str  # our class, "study.<module>:<Class>"
    keras_target: str | None = None  # the built-in of the same technique, "keras.<module>:<Class>"
    defaults: dict[str, Any] = field(default_factory=dict)  # our preset's arguments
    keras_defaults: dict[str, Any] = field(default_factory=dict)  # the built-in's

    @property
    def factory(self) -> Callable[..., Any]:
        return import_target(self.target)

    @property
    def keras(self) -> Callable[..., Any] | None:
        if self.keras_target is None:
            return None
        return functools.partial(import_target(self.keras_target), **self.keras_defaults)

    @property
    def public_name(self) -> str:
        """`study.layers.Affine`, not the defining module; presets show their arguments."""
        module, _, name = self.target.partition(":")
        preset = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return ".".join(module.split(".")[:2]) + f".{name}" + (f"({preset})" if preset else "")

    @property
    def summary(self) -> str:
        """The first line of the class's docstring, read from its source (nothing imported)."""
        return _summary(self.target)

    def create(self, **kwargs: Any) -> Any:
        return self.factory(**{**self.defaults, **kwargs})

    def create_keras(self, **kwargs: Any) -> Any:
        if self.keras_target is None:
            raise UnknownComponentError(self.kind, KERAS_PREFIX + self.name, None)
        return self.keras(**{**self.defaults, **kwargs})


@functools.cache
def _summary(target: str) -> str:
    module, _, name = target.partition(":")
    path = _PACKAGE_ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            doc = (ast.get_docstring(node) or "").strip()
            return doc.splitlines()[0] if doc else ""
    raise LookupError(f"{target}: no class {name} in {path}")


_OPT, _INIT = "study.optimizers", "study.initializers:"
_LAYER, _ACT = "study.layers", "study.layers.activation_layers:"
_KOPT, _KINIT = "keras.optimizers:", "keras.initializers:"
_KREG, _KLAYER = "keras.regularizers:", "keras.layers:"


def _initializer(name: str, cls: str) -> Component:
    return Component("initializer", name, _INIT + cls, _KINIT + cls)


def _builtin_activation(name: str, cls: str, keras_function: str) -> Component:
    # Keras has no layer class of its own for these: its Activation layer with the function.
    return Component("activation", name, _ACT + cls, _KLAYER + "Activation",
                     keras_defaults={"activation": keras_function})


COMPONENTS: tuple[Component, ...] = (
    # optimizers
    Component("optimizer", "sgd", f"{_OPT}.sgd:SGD", _KOPT + "SGD"),
    Component("optimizer", "momentum", f"{_OPT}.momentum:Momentum", _KOPT + "SGD",
              keras_defaults={"momentum": 0.9}),
    Component("optimizer", "nesterov", f"{_OPT}.momentum:Momentum", _KOPT + "SGD",
              defaults={"nesterov": True}, keras_defaults={"momentum": 0.9}),
    Component("optimizer", "adagrad", f"{_OPT}.adagrad:AdaGrad", _KOPT + "Adagrad"),
    Component("optimizer", "rmsprop", f"{_OPT}.rmsprop:RMSProp", _KOPT + "RMSprop"),
    Component("optimizer", "adam", f"{_OPT}.adam:Adam", _KOPT + "Adam"),
    # initializers
    _initializer("zeros", "Zeros"),
    _initializer("ones", "Ones"),
    _initializer("constant", "Constant"),
    _initializer("identity", "Identity"),
    _initializer("orthogonal", "Orthogonal"),
    _initializer("random_uniform", "RandomUniform"),
    _initializer("random_normal", "RandomNormal"),
    _initializer("truncated_normal", "TruncatedNormal"),
    _initializer("lecun_uniform", "LecunUniform"),
    _initializer("lecun_normal", "LecunNormal"),
    _initializer("glorot_uniform", "GlorotUniform"),
    _initializer("glorot_normal", "GlorotNormal"),
    _initializer("he_uniform", "HeUniform"),
    _initializer("he_normal", "HeNormal"),
    _initializer("variance_scaling", "VarianceScaling"),
    # regularizers and constraints
    Component("regularizer", "l1", "study.regularizers:L1", _KREG + "L1"),
    Component("regularizer", "l2", "study.regularizers:L2", _KREG + "L2"),
    Component("regularizer", "elastic_net", "study.regularizers:ElasticNet", _KREG + "L1L2"),
    Component("constraint", "max_norm", "study.constraints:MaxNorm", "keras.constraints:MaxNorm"),
    # activations, as layers so that PReLU's learned slope fits the same slot
    Component("activation", "step", _ACT + "Step"),
    _builtin_activation("sigmoid", "Sigmoid", "sigmoid"),
    _builtin_activation("tanh", "Tanh", "tanh"),
    Component("activation", "relu", _ACT + "ReLU", _KLAYER + "ReLU"),
    Component("activation", "leaky_relu", _ACT + "LeakyReLU", _KLAYER + "LeakyReLU"),
    Component("activation", "elu", _ACT + "ELU", _KLAYER + "ELU"),
    Component("activation", "prelu", f"{_LAYER}.prelu:PReLU", _KLAYER + "PReLU"),
    _builtin_activation("swish", "Swish", "swish"),
    _builtin_activation("softplus", "Softplus", "softplus"),
    Component("activation", "softmax", _ACT + "Softmax", _KLAYER + "Softmax"),
    # layers
    Component("layer", "affine", f"{_LAYER}.affine:Affine", _KLAYER + "Dense"),
    Component("layer", "dropout", f"{_LAYER}.dropout:Dropout", _KLAYER + "Dropout"),
    Component("layer", "batch_norm", f"{_LAYER}.batch_normalization:BatchNormalization",
              _KLAYER + "BatchNormalization"),
    Component("layer", "residual", f"{_LAYER}.residual:ResidualBlock"),
)

_BY_KEY = {(c.kind, c.name): c for c in COMPONENTS}

# Keras's own lookup per kind, for "keras.<name>" names this table does not list.
_KERAS_GET = {"optimizer": "keras.optimizers:get", "initializer": "keras.initializers:get",
              "regularizer": "keras.regularizers:get", "constraint": "keras.constraints:get"}


def register(component: Component) -> Component:
    """Add an entry at run time (tests, notebooks): the engine reads it like the table's own."""
    global COMPONENTS
    _check_kind(component.kind)
    if (component.kind, component.name) in _BY_KEY:
        raise ValueError(f"{component.kind} {component.name!r} is registered already")
    COMPONENTS = COMPONENTS + (component,)
    _BY_KEY[(component.kind, component.name)] = component
    return component


def unregister(kind: str, name: str) -> None:
    global COMPONENTS
    entry = _BY_KEY.pop((kind, name))
    COMPONENTS = tuple(c for c in COMPONENTS if c is not entry)


def names(kind: str, include_keras: bool = True) -> list[str]:
    """Every config name of one kind, ours first, then the listed built-ins."""
    _check_kind(kind)
    ours = [c.name for c in COMPONENTS if c.kind == kind]
    builtins = [KERAS_PREFIX + c.name for c in COMPONENTS if c.kind == kind and c.keras_target]
    return ours + (builtins if include_keras else [])


def known(kind: str, name: str) -> bool:
    """Is `name` an entry of the table (or a listed built-in)? Imports nothing."""
    bare = name[len(KERAS_PREFIX):] if name.startswith(KERAS_PREFIX) else name
    entry = _BY_KEY.get((kind, bare))
    return entry is not None and (bare == name or entry.keras_target is not None)


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
    if entry is not None and entry.keras_target is not None:
        return entry.create_keras(**kwargs)
    return _create_keras_by_name(kind, name, kwargs)


def keras_class(kind: str, name: str) -> Any:
    """The class (or function, for activations) `"keras.<name>"` stands for, or
    UnknownComponentError."""
    entry = _BY_KEY.get((kind, name[len(KERAS_PREFIX):]))
    if entry is not None and entry.keras_target is not None:
        return import_target(entry.keras_target)
    bare = name[len(KERAS_PREFIX):]
    import keras

    try:
        if kind == "activation":
            default = keras.activations.get(bare)
        elif kind == "layer":
            default = _keras_layer_class(bare)
        else:
            default = import_target(_KERAS_GET[kind])(bare)
    except (KeyError, ValueError, TypeError, AttributeError):
        default = None
    if default is None:
        raise UnknownComponentError(kind, name, suggest(kind, name))
    return default if kind in ("activation", "layer") else type(default)


def suggest(kind: str, name: str) -> str | None:
    close = difflib.get_close_matches(name, names(kind), n=1, cutoff=0.6)
    return close[0] if close else None


def _keras_layer_class(bare: str):
    """`"layer_normalization"` or `"LayerNormalization"` -> keras.layers.LayerNormalization."""
    import keras

    wanted = bare.replace("_", "").lower()
    for attribute in dir(keras.layers):
        candidate = getattr(keras.layers, attribute)
        if (attribute.lower() == wanted and isinstance(candidate, type)
                and issubclass(candidate, keras.layers.Layer)):
            return candidate
    return None


def _create_keras_by_name(kind: str, name: str, kwargs: dict[str, Any]) -> Any:
    import keras

    target = keras_class(kind, name)
    if kind == "activation":  # a function: Keras's Activation layer wraps it
        return keras.layers.Activation(target, **kwargs)
    return target(**kwargs)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; one of {', '.join(KINDS)}")

"""Components named in study files: a registry name, `"keras.<name>"`, or your own class.

A study file names a component wherever it names an optimizer, initializer, regularizer,
constraint, activation or layer, in one of three forms:

- a name of `study.registry` (`"adam"`, `"he_normal"`, `"batch_norm"`);
- `"keras.<name>"`: the built-in the registry lists beside ours, or whatever Keras knows by
  that name (`"keras.nadam"`, `"keras.layer_normalization"`);
- `"package.module:ClassName"`: your own class, imported from the project root (the folder
  `study run` starts in) or the Python path. It must subclass the Keras base class of its
  kind (`BASES`); an activation may be any callable (a function of x, or a Layer class).

Checking happens at two depths. `check_name` (the schema's; imports nothing) checks the form,
and that a registry name exists. `check_arguments` (at load, when `study run` validates;
imports Keras) resolves the component, checks its arguments against its constructor, builds
it once, and for your own classes checks that `get_config` round-trips through `from_config`.
Each distinct (kind, name, arguments) is built once per process, however often a study's
combinations are validated. A failure is a `ValueError` whose text is the user's message.

Your own code is part of a run's identity: `fingerprints(config)` hashes the source file of
every own component a run names, and the run key includes it, so editing your optimizer
reruns exactly the runs that use it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from study import registry

IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

# The Keras base class an own component of each kind must subclass.
BASES = {"optimizer": "keras.optimizers:Optimizer", "initializer": "keras.initializers:Initializer",
         "regularizer": "keras.regularizers:Regularizer",
         "constraint": "keras.constraints:Constraint", "layer": "keras.layers:Layer"}

# Keras's base optimizer arguments, which every optimizer forwards to its base class.
BASE_OPTIMIZER_ARGS = {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                       "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                       "gradient_accumulation_steps", "name"}
BASE_LAYER_ARGS = {"name", "dtype", "trainable", "autocast"}


def is_own(name: Any) -> bool:
    return isinstance(name, str) and ":" in name


def check_name(kind: str, value: Any, *, build: bool = True) -> str:
    """The schema's check of a component name; with `build`, also resolve it (imports)."""
    if not isinstance(value, str):
        raise ValueError(f"must be the name of {_article(kind)} (a string)")
    if is_own(value):
        if not IMPORT_PATH.match(value):
            raise ValueError(f"{value!r}: your own {kind} is named 'package.module:ClassName'")
    elif not value.startswith(registry.KERAS_PREFIX):
        registry.lookup(kind, value)  # UnknownComponentError with a did-you-mean
    if build:
        component_class(kind, value)
    return value


def component_class(kind: str, name: str) -> Any:
    """The class (or, for an activation, possibly a function) that `name` stands for."""
    if is_own(name):
        return _own_class(kind, name)
    if name.startswith(registry.KERAS_PREFIX):
        return registry.keras_class(kind, name)
    return registry.lookup(kind, name).factory


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    """A new instance of component `name` with `kwargs`; an own activation function becomes
    a `keras.layers.Activation` (the layer arguments `name` and `dtype` go to that layer)."""
    if not is_own(name):
        return registry.create(kind, name, **kwargs)
    target = _own_class(kind, name)
    if kind == "activation" and not isinstance(target, type):
        import keras

        layer_args = {k: kwargs.pop(k) for k in ("name", "dtype") if k in kwargs}
        function = functools.partial(target, **kwargs) if kwargs else target
        return keras.layers.Activation(function, **layer_args)
    return target(**kwargs)


def accepts(kind: str, name: str, argument: str) -> bool:
    """Does the component's constructor take `argument` (e.g. "seed") by name?"""
    target = component_class(kind, name)
    try:
        return argument in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def check_arguments(kind: str, name: str, args: dict[str, Any], where: str) -> None:
    """Build the component once with `args`, so a bad argument is reported before training."""
    try:
        key = json.dumps(args, sort_keys=True, default=repr)
    except TypeError:
        key = repr(sorted(args.items()))
    problem = _build_problem(kind, name, key)
    if problem:
        raise ValueError(f"{where}: {problem}")


@functools.cache
def _build_problem(kind: str, name: str, args_json: str) -> str | None:
    args = json.loads(args_json)
    try:
        target = component_class(kind, name)
    except ValueError as error:
        return str(error)
    unknown, accepted = _unknown_arguments(kind, name, target, args)
    if unknown:
        return (f"{name} does not take {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(sorted(accepted))})")
    try:
        instance = create(kind, name, **args)
    except Exception as error:  # whatever the component raises, the user sees one clear line
        return f"{name}: {error}"
    if is_own(name) and isinstance(target, type):
        return _round_trip_problem(name, instance)
    return None


def _unknown_arguments(kind: str, name: str, target: Any, args: dict[str, Any]):
    if name.startswith(registry.KERAS_PREFIX) and not is_own(name):
        return [], set()  # Keras checks its own arguments, with its own messages
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return [], set()
    if kind == "activation" and not isinstance(target, type):
        parameters = dict(list(parameters.items())[1:])  # the first is x
    variadic = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = {p for p, v in parameters.items()
                if v.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
                and p != "self"}
    if kind == "optimizer":
        accepted |= BASE_OPTIMIZER_ARGS
    if variadic and is_own(name):
        if kind not in ("optimizer", "layer", "activation"):
            return [], accepted  # **kwargs of unknown use: the constructor decides
        accepted |= BASE_LAYER_ARGS if kind != "optimizer" else set()
    return sorted(set(args) - accepted), accepted


def _round_trip_problem(name: str, instance: Any) -> str | None:
    try:
        config = instance.get_config()
        clone = type(instance).from_config(config)
        again = clone.get_config()
    except Exception as error:
        return (f"{name}: get_config does not round-trip through from_config "
                f"({type(error).__name__}: {error})")
    if _comparable(config) != _comparable(again):
        changed = sorted(k for k in set(config) | set(again) if config.get(k) != again.get(k))
        return (f"{name}: get_config does not round-trip through from_config "
                f"(these keys change: {', '.join(changed)})")
    return None


def _comparable(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def project_root() -> Path:
    return Path.cwd()


def _importable_from_project_root() -> str:
    """Put the project root on the import path (spawned workers inherit the driver's path)."""
    root = str(project_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    return root


@functools.cache
def _own_class(kind: str, name: str) -> Any:
    module_name, _, class_name = name.partition(":")
    root = _importable_from_project_root()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"{name!r}: no module named {error.name!r} (looked in the project "
                         f"root {root} and on the Python path)") from None
    except Exception as error:
        raise ValueError(f"{name!r}: importing {module_name} failed: "
                         f"{type(error).__name__}: {error}") from None
    target = getattr(module, class_name, None)
    if target is None:
        public = [n for n in vars(module) if not n.startswith("_")]
        close = difflib.get_close_matches(class_name, public, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name!r}: module {module_name} has no {class_name!r}{hint}")
    if kind == "activation":
        if not callable(target):
            raise ValueError(f"{name!r}: an activation must be callable (a function of x or a "
                             f"Layer class); {class_name} is {type(target).__name__}")
        if isinstance(target, type):
            _check_base(name, target, "layer")
        return target
    _check_base(name, target, kind)
    return target


def _check_base(name: str, target: Any, kind: str) -> None:
    base = registry.import_target(BASES[kind])
    if not (isinstance(target, type) and issubclass(target, base)):
        what = f"class {target.__name__}" if isinstance(target, type) else type(target).__name__
        base_name = BASES[kind].replace(":", ".")
        raise ValueError(f"{name!r}: your own {kind} must subclass {base_name}; "
                         f"{name.partition(':')[2]} is a {what} that does not")


def fingerprints(config: Any) -> dict[str, str]:
    """`{"package.module:Class": sha256 of its source file (16 hex)}` for every own component
    the run configuration names, at any depth (layer lists and argument tables included)."""
    found: dict[str, str] = {}
    _collect(config, found)
    return dict(sorted(found.items()))


def _collect(value: Any, found: dict[str, str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
    elif isinstance(value, str) and IMPORT_PATH.match(value) and value not in found:
        found[value] = source_fingerprint(value.partition(":")[0])


@functools.cache
def source_fingerprint(module_name: str) -> str:
    """The hash of a module's source file (finding it imports its parent packages only)."""
    _importable_from_project_root()
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return "missing"
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]

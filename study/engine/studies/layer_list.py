"""The hidden stack of a model as a list of layers, written out or from the shorthands.

`[model] layers = [{ layer = "affine", units = 100 }, { layer = "batch_norm", momentum = 0.9 },
{ layer = "relu" }, ...]` builds any stack, in order, of the registry's layers and
activations, Keras's (`"keras.layer_normalization"`) and your own (`"package.module:Class"`);
every key but `layer` is an argument of the layer's constructor. The network's output layer
(an affine map to the classes, and the softmax of an MSE loss) follows the stack.

The shorthands `hidden`, `activation`, `batch_norm`, `dropout`, `residual` (and their `*_args`)
expand to such a list, `[affine (or residual) -> (batch_norm) -> activation -> (dropout)] x n`
(`from_model`), which the model builder reads either way; a run written with the shorthands
keeps its run key. Pre-activation blocks (`residual_args = { preactivation = true }`) apply the
activation inside, y = x + W2 act(W1 act(x) + b1) + b2, so no activation layer follows them
(batch_norm and dropout, when set, still do): `[residual -> (batch_norm) -> (dropout)]`.

The builder fills in what a layer's position decides: each weight layer (`affine`,
`keras.affine`, `residual`) opens block i and takes the model's initializer seeded by the run's
seed and i, its bias initializer, regularizer, constraint and `use_bias`; a layer that takes a
`seed` (dropout) gets one from the run's seed and its block; names are `<kind>_<i + 1>`.
"""

from __future__ import annotations

import difflib
from typing import Any

from study import registry
from study.engine.studies import components

SHORTHANDS = ("hidden", "batch_norm", "batch_norm_args", "dropout", "dropout_args", "residual",
              "residual_args")
WEIGHT_LAYERS = ("affine", "keras.affine", "residual")


def from_model(model) -> list[dict[str, Any]]:
    """The model's hidden stack as layer entries (`{"layer": name, **arguments}`)."""
    if model.layers is not None:
        return [dict(entry) for entry in model.layers]
    normalization = {True: "batch_norm", "keras": "keras.batch_norm"}.get(model.batch_norm,
                                                                          model.batch_norm)
    entries = []
    for i, units in enumerate(model.hidden):
        block = model.residual and i > 0
        if block:
            entries.append({"layer": "residual", **model.residual_args})
        else:
            entries.append({"layer": "affine", "units": units})
        if model.batch_norm:
            entries.append({"layer": normalization, **model.batch_norm_args})
        if not (block and preactivation(model)):  # the pre form's activation is inside
            entries.append({"layer": model.activation, **model.activation_args})
        if model.dropout > 0:
            entries.append({"layer": "dropout", "rate": model.dropout, **model.dropout_args})
    return entries


def preactivation(model) -> bool:
    """Are the shorthand's residual blocks of the pre-activation form (no activation after)?"""
    return model.residual_args.get("preactivation") is True


def as_shorthand(model) -> dict[str, Any] | None:
    """The shorthand settings that expand to `model.layers` exactly, or None if there are none.

    A written-out list that the shorthands can express is stored (and keyed) as them, so a run
    is one run however it is written: `[affine 100, relu] x 2` is `hidden = [100, 100]`. Each
    reading of the first block (with or without a normalisation layer) is tried, and kept only
    if `from_model` gives the list back entry for entry. Residual blocks take the model's
    `activation` and `activation_args` either way, so a list with them converts only when its
    activation entries are those.
    """
    entries = [dict(e) for e in model.layers or []]
    blocks: list[list[dict[str, Any]]] = []
    for entry in entries:
        if entry["layer"] in WEIGHT_LAYERS or not blocks:
            blocks.append([])
        blocks[-1].append(entry)
    if not blocks or blocks[0][0]["layer"] != "affine" or set(blocks[0][0]) != {"layer", "units"}:
        return None
    first = blocks[0]
    residual = len(blocks) > 1 and blocks[1][0]["layer"] == "residual"
    for norm in ([first[1]] if len(first) > 2 else []) + [None]:
        if norm is not None and not (norm["layer"] in _NORMALISATIONS
                                     or components.is_own(norm["layer"])):
            continue
        activation = first[2 if norm else 1] if len(first) > (2 if norm else 1) else None
        if activation is None or (residual and (activation["layer"], arguments(activation)) != (
                model.activation, model.activation_args)):
            continue
        dropout = first[-1] if first[-1] is not activation else None
        rate = arguments(dropout).pop("rate", None) if dropout else 0.0
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            continue
        candidate = {
            "hidden": [first[0]["units"]] * len(blocks) if residual
            else [block[0].get("units") for block in blocks],
            "activation": activation["layer"], "activation_args": arguments(activation),
            "batch_norm": _NORMALISATIONS.get(norm["layer"], norm["layer"]) if norm else False,
            "batch_norm_args": arguments(norm) if norm else {},
            "dropout": float(rate),
            "dropout_args": {k: v for k, v in arguments(dropout).items() if k != "rate"}
            if dropout else {},
            "residual": residual,
            "residual_args": arguments(blocks[1][0]) if residual else {},
        }
        if from_model(model.model_copy(update={**candidate, "layers": None})) == entries:
            return candidate
    return None


_NORMALISATIONS = {"batch_norm": True, "keras.batch_norm": "keras"}


def arguments(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "layer"}


def kind_of(name: str, *, build: bool = True) -> str:
    """"layer" or "activation": which kind of component a layer entry's name is."""
    for kind in ("layer", "activation"):
        if not components.is_own(name) and registry.known(kind, name):
            return kind
    if not (components.is_own(name) or name.startswith(registry.KERAS_PREFIX)):
        raise registry.UnknownComponentError("layer or activation", name, _suggest(name))
    if not build:
        return "layer"
    if components.is_own(name):
        target = components.component_class("activation", name)  # a Layer class or a function
        return "layer" if isinstance(target, type) else "activation"
    try:
        components.component_class("layer", name)
        return "layer"
    except ValueError:
        components.component_class("activation", name)
        return "activation"


def check_entries(entries: list[Any], *, build: bool) -> None:
    """The form of a layer list: each entry a table with a known `layer` (and `units` where
    needed). Raises ValueError naming the entry."""
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("layer"), str):
            raise ValueError(f"[{i}]: each entry is a table with a `layer` name, e.g. "
                             f"{{ layer = \"affine\", units = 100 }}; got {entry!r}")
        name = entry["layer"]
        try:
            kind = kind_of(name, build=build)
            if components.is_own(name):
                components.check_name(kind, name, build=build)
        except ValueError as error:
            raise ValueError(f"[{i}]: {error}") from None
        if name in ("affine", "keras.affine"):
            units = entry.get("units")
            if not (isinstance(units, int) and not isinstance(units, bool) and units > 0):
                raise ValueError(f"[{i}]: {name} needs `units`, a positive integer; got "
                                 f"{units!r}")
        if "name" in entry:
            raise ValueError(f"[{i}]: `name` is set by the engine (by position)")


def check_arguments(model) -> None:
    """Build every layer of the stack once with its arguments (ValueError naming the key that
    gave them: `layers[i]`, or the shorthand's `*_args`). Each distinct layer is built once
    (`components.check_arguments` remembers), however many blocks repeat it."""
    if model.layers is not None:
        located = [(entry, f"layers[{i}]") for i, entry in enumerate(model.layers)]
    else:
        located = [(entry, _shorthand_key(model, entry["layer"])) for entry in from_model(model)]
    for entry, where in located:
        name = entry["layer"]
        components.check_arguments(kind_of(name), name, arguments(entry), where)


def _shorthand_key(model, name: str) -> str:
    """The study-file key whose arguments a shorthand-made entry carries."""
    if name in ("affine", "dropout", "residual"):
        return {"affine": "hidden", "dropout": "dropout_args", "residual": "residual_args"}[name]
    return "activation_args" if name == model.activation else "batch_norm_args"


def _suggest(name: str) -> str | None:
    candidates = registry.names("layer") + registry.names("activation")
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None

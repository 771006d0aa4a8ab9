"""One setting's value in the words a person reads: "Adam", "lr=0.3", "L2 λ=0.05", "He",
"std 0.01", "hidden 5-4", "no hidden layer", "dropout p=0.2", "BN".

`phrase(setting, value, args)` words a setting (its last name, `_args` stripped: "optimizer",
"initializer") with its argument table (`optimizer_args`, ...); either may be None (an axis
that varies only the arguments, or only the component). Settings without words of their own
read "setting=value". `digits`: significant digits of numbers (more when names collide).
Pure Python: the report, the Python API and the engine's checks all read it.
"""

from __future__ import annotations

import json
from typing import Any, Callable

# The textbooks' spellings (DLFS ch. 6, Goodfellow et al. ch. 8); others stay as written.
OPTIMIZERS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov",
              "adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam", "adamw": "AdamW",
              "adadelta": "AdaDelta", "adamax": "Adamax", "nadam": "Nadam", "lion": "Lion"}
ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "elu": "ELU", "prelu": "PReLU",
               "selu": "SELU", "gelu": "GELU"}
INITIALIZERS = {"he_normal": "He normal", "he_uniform": "He uniform",
                "glorot_normal": "Glorot normal", "glorot_uniform": "Glorot uniform",
                "lecun_normal": "LeCun normal", "lecun_uniform": "LeCun uniform",
                "random_normal": "normal", "random_uniform": "uniform",
                "truncated_normal": "truncated normal", "variance_scaling": "variance scaling"}
REGULARIZERS = {"l1": "L1", "l2": "L2", "elastic_net": "elastic net", "l1_l2": "L1+L2"}
LOSSES = {"cross_entropy": "CE", "binary_cross_entropy": "BCE", "mse": "MSE"}
# Argument names as formulas write them; a True flag reads as its words alone.
ARGUMENTS = {"epsilon": "ε", "rho": "ρ", "beta_1": "β1", "beta_2": "β2",
             "moving_variance_initializer": "var init", "initial_accumulator_value": "h0",
             "epsilon_outside_root": "ε outside root", "preactivation": "pre-activation",
             "inverted": "inverted", "decay_rate": "rate", "decay_steps": "every"}


def number(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def component(name: Any, words: dict[str, str]) -> str:
    """"adam" -> "Adam"; "keras.adam" -> "keras.Adam"; "examples.lion:Lion" -> "Lion"."""
    text = str(name)
    if ":" in text:
        return text.rsplit(":", 1)[1]
    if text.startswith("keras."):
        bare = text.removeprefix("keras.")
        return "keras." + words.get(bare, bare)
    return words.get(text, text)


def arguments(args: dict | None, digits: int = 3, skip: tuple[str, ...] = ()) -> str:
    """{"rho": 0.99} -> "ρ=0.99"; a flag {"preactivation": true} -> "pre-activation",
    {"inverted": false} -> "not inverted"."""
    parts = []
    for key, value in sorted((args or {}).items()):
        if key in skip:
            continue
        word = ARGUMENTS.get(key, key)
        if isinstance(value, bool):
            parts.append(word if value else f"not {word}")
        else:
            parts.append(f"{word}={number(value, digits)}")
    return " ".join(parts)


def _joined(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _optimizer(value, args, digits):
    return _joined(component(value, OPTIMIZERS) if value else "", arguments(args, digits))


def _initializer(value, args, digits):
    args = dict(args or {})
    bare = str(value).removeprefix("keras.") if value else None
    if bare == "variance_scaling" and args.get("mode") == "fan_in" \
            and args.get("distribution") in ("untruncated_normal", "normal"):
        # The book's forms: N(0, scale / fan_in): He for ReLU (2), Xavier for sigmoid (1).
        scale = float(args.get("scale", 1.0))
        if scale in (1.0, 2.0):
            return ("keras." if str(value).startswith("keras.") else "") + (
                "He" if scale == 2.0 else "Xavier")
    if bare in (None, "random_normal") and set(args) <= {"stddev", "mean"} and "stddev" in args \
            and not args.get("mean"):
        return f"std {number(args['stddev'], digits)}"
    if bare == "constant" and set(args) == {"value"}:
        return f"constant {number(args['value'], digits)}"
    return _joined(component(value, INITIALIZERS) if value else "", arguments(args, digits))


def _regularizer(value, args, digits):
    if value is None and not args:
        return "no regularizer"
    args = dict(args or {})
    name = component(value, REGULARIZERS) if value else ""
    strengths = {k: args.pop(k) for k in ("l1", "l2") if k in args}
    if len(strengths) == 1:
        (strength,) = strengths.values()
        lam = f"λ={number(strength, digits)}"
        if not name:  # only the strength varies: its key says which penalty
            name = REGULARIZERS[next(iter(strengths))]
    else:
        lam = " ".join(f"λ{k[1]}={number(v, digits)}" for k, v in strengths.items())
    return _joined(name, lam, arguments(args, digits))


def _dropout(value, args, digits):
    if value is not None and not value:
        return "no dropout"
    rate = f"dropout p={number(value, digits)}" if value is not None else "dropout"
    extra = arguments(args, digits)
    return f"{rate} ({extra})" if extra else rate


def _batch_norm(value, args, digits):
    if value is False:
        return "no BN"
    if value is None or value is True:
        name = "BN"
    elif value == "keras":
        name = "keras BN"
    else:
        name = component(value, {})
    return _joined(name, arguments(args, digits) or ("defaults" if value is None else ""))


def _residual(value, args, digits):
    if value is False:
        return "no residual"
    extra = arguments(args, digits)
    return f"{extra} residual" if extra else "residual"


def _hidden(value, args, digits):
    sizes = list(value or [])
    if not sizes:
        return "no hidden layer"
    if len(sizes) > 3 and len(set(sizes)) == 1:
        return f"hidden {len(sizes)}×{sizes[0]}"
    return "hidden " + "-".join(map(str, sizes))


def _schedule(value, args, digits):
    if not isinstance(value, dict):
        return f"schedule {value}"
    kind = value.get("kind", "constant")
    if kind == "constant":
        return "constant lr"
    rest = {k: v for k, v in value.items() if k != "kind"}
    return _joined(f"{kind.replace('_', '-')} decay", arguments(rest, digits))


def _early_stopping(value, args, digits):
    if not value:
        return "no early stopping"
    if isinstance(value, dict):
        return _joined("early stopping", arguments(value, digits))
    return "early stopping"


def _plain(words: dict[str, str] | None = None, prefix: str = ""):
    def phrase(value, args, digits):
        text = component(value, words) if words is not None else number(value, digits)
        return _joined(prefix + text, arguments(args, digits))
    return phrase


def _counted(zero: str, template: str):
    def phrase(value, args, digits):
        return zero if not value else template.format(number(value, digits))
    return phrase


PHRASES: dict[str, Callable[[Any, dict | None, int], str]] = {
    "optimizer": _optimizer, "initializer": _initializer, "regularizer": _regularizer,
    "dropout": _dropout, "batch_norm": _batch_norm, "residual": _residual, "hidden": _hidden,
    "schedule": _schedule, "early_stopping": _early_stopping,
    "activation": _plain(ACTIVATIONS), "loss": _plain(LOSSES),
    "learning_rate": _plain(prefix="lr="), "batch_size": _plain(prefix="batch "),
    "dataset": lambda value, args, digits: str(value).replace("_", " "),
    "target": _plain(prefix="target "), "round": lambda v, a, d: (
        f"round {v}" if isinstance(v, int) else str(v)),
    "repeat": _plain(prefix="repeat "), "sampling": _plain({"with_replacement":
                                                             "with replacement"}),
    "constraint": lambda v, a, d: "no constraint" if v is None else
    _joined(str(v).replace("_", "-"), arguments(a, d)),
    "ensemble": lambda v, a, d: "single net" if v in (None, 1) else f"ensemble of {v}",
    "augment_shift": _counted("no shift", "shift ≤{} px"),
    "steps": _counted("0 steps", "{} steps"), "epochs": _counted("0 epochs", "{} epochs"),
    "log_every": _plain(prefix="log every "),
    "evaluate_test": lambda v, a, d: "test set" if v else "no test set",
    "use_bias": lambda v, a, d: "bias" if v else "no bias",
}


def setting(name: str) -> str:
    """The setting an axis varies, by path or last name: "model.initializer_args",
    "initializer_args" and "initializer" -> "initializer"; "model.regularizer_args.l2" ->
    "regularizer"; "search.round" -> "round"."""
    parts = name.split(".")
    last = parts[1] if len(parts) > 1 and parts[0] != "search" else parts[-1]
    return last.removesuffix("_args")


def phrase(name: str, value: Any, args: dict | None = None, digits: int = 3) -> str:
    """`name`'s value (and argument table) in words; "name=value" for settings without
    words of their own."""
    if value == "none":
        value = None
    words = PHRASES.get(name)
    if words is not None:
        return words(value, args, digits)
    if isinstance(value, (list, dict)):
        value = json.dumps(value, separators=(",", ":"))
    text = f"{name.replace('_', ' ')}={number(value, digits)}" if value is not None else name
    return _joined(text, arguments(args, digits))


def value_text(column: str, value: Any) -> str:
    """A value of a runs frame's column (a setting by last name; lists and tables as JSON
    text) as tables and figures show it: "initializer_args" {"stddev": 0.01} -> "std 0.01",
    "hidden" "[5,4]" -> "hidden 5-4". Numbers stay numbers as written (an axis of rates
    reads 0.001, not lr=0.001: the axis is labelled), other columns as they are."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    name = setting(column)
    if name not in PHRASES or isinstance(value, float) and value != value:
        return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) \
            else str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and name not in ("dropout", "ensemble", "augment_shift", "round"):
        return str(value)
    if column.endswith("_args"):
        return phrase(name, None, value)
    return phrase(name, value)

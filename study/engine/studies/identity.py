"""A run's identity and its name: the run key, and the arm's label for people.

The key is a hash of everything a run depends on: the engine's version, the study, the seed,
the resolved configuration, the fingerprints of the source files of your own components (when
the run names some), the fingerprint of the data where the configuration does not fix it (your
own files, an MNIST file other than the usual one: `data_files`) and, when it has a residual block, how the block seeds its kernels.
Settings added after results were first stored are left out of the configuration while at
their default (`ADDED_LATER`), so adding a setting never changes the key of a run that
predates it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Part of every run key: bump it when a change to the engine changes what a run computes, so
# that stored results of the old engine are not mistaken for the new one's.
ENGINE_VERSION = 2  # 2: full-batch steps in data order; train_* metrics on <= 10,000 samples

ADDED_LATER = {("task",): "train", ("model", "use_bias"): True, ("data", "n_points"): 1000,
               ("data", "dim"): 100, ("data", "start"): [-7.0, 2.0], ("data", "start_jitter"): 0.0,
               ("data", "target"): "digit", ("training", "augment_shift"): 0,
               ("training", "ensemble"): 1, ("training", "record_gradients"): False,
               ("training", "record_boundaries"): False,
               ("training", "history_validation_size"): None,
               ("model", "activation_args"): {}, ("model", "dropout_args"): {},
               ("model", "batch_norm_args"): {}, ("model", "residual_args"): {},
               ("model", "layers"): None, ("training", "sampling"): "permutation",
               ("training", "early_stopping", "split"): None, ("data", "path"): None,
               ("data", "label"): None, ("data", "features"): None, ("data", "test_path"): None,
               ("data", "validation_fraction"): 0.1, ("data", "test_fraction"): 0.2,
               ("data", "scale"): "none"}


def without_later_defaults(config: dict[str, Any]) -> dict[str, Any]:
    for path, default in ADDED_LATER.items():
        *parents, last = path
        node = config
        for part in parents:
            node = node.get(part) or {}
        if node.get(last, object()) == default:
            del node[last]
    if config.get("training", ...) is None:
        del config["training"]
    return config


# Residual blocks once drew W1 and W2 from one integer seed (W1 == W2 at the start); they now
# seed W2 apart (study.layers.residual), which changes what every run with a block computes. So
# the key of such a run takes this marker, and stored results of the old blocks are not reused;
# runs without a block keep their keys (a new ENGINE_VERSION would have changed them all).
RESIDUAL_KERNELS = "seeded apart"


def has_residual_block(config: dict[str, Any]) -> bool:
    """Does the resolved configuration's network have a ResidualBlock (shorthand or list)?"""
    model = config.get("model") or {}
    return bool(model.get("residual")) or any(
        isinstance(entry, dict) and entry.get("layer") == "residual"
        for entry in model.get("layers") or [])


# The functions of task "optimizer_path" whose runs take revision 3 (the bowls keep 2).
REVISED_SURFACES = ("rosenbrock", "saddle", "beale", "rastrigin")


def revisions(config: dict[str, Any]) -> dict[str, int]:
    """What changed in the computation of some runs since their configuration was first keyed.

    Joining the key of those runs only, a revision keeps their stored results from being taken
    for the new computation's without moving any other run's key (as ENGINE_VERSION would).
    """
    changed = {}
    if config.get("task") == "optimizer_path":
        # 2: x_overshoot and x_halved_at_step recorded; 3: a walk that leaves |x|, |y| <= 1e6
        # or turns non-finite is stopped there (diverged, or on the saddle escaped), and
        # final_gradient_norm, escape_step and stopped_at_step are recorded. The bowls keep 2,
        # so the stored runs of optimizer_paths keep their keys: none of them leaves the box,
        # so their paths and metrics are unchanged; they only lack the three new metrics.
        dataset = (config.get("data") or {}).get("dataset")
        changed["optimizer_path"] = 3 if dataset in REVISED_SURFACES else 2
    return changed


def run_key(study: str, config: dict[str, Any], seed: int,
            code: dict[str, str] | None = None, data: str | None = None) -> str:
    """`code`: own component -> fingerprint of its source (only when the run names one);
    `data`: the fingerprint of the data when the configuration does not say it all
    (`data_files.fingerprint`: own files, an MNIST other than the usual one), with `config`
    then as `data_files.keyed` gives it."""
    payload = {"engine": ENGINE_VERSION, "study": study, "seed": seed, "config": config}
    if code:
        payload["code"] = code
    if data:
        payload["data"] = data
    if has_residual_block(config):
        payload["residual_kernels"] = RESIDUAL_KERNELS
    if revised := revisions(config):
        payload["revisions"] = revised
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def label(overrides: dict[str, Any]) -> str:
    """A run's arm as stored: "axis=value" pairs in the order of the study file."""
    return ", ".join(f"{path.split('.')[-1]}={short(value)}" for path, value in overrides.items())


def arm_name(overrides: dict[str, Any]) -> str:
    """An arm's name for people (the report's tables and legends): strings bare, argument
    tables as "k=v" pairs (left out when empty), other values as "axis=value".
    `[report.names]` can replace it with a shorter one."""
    parts = []  # in sorted order: a study file and its stored copy (sorted keys) agree
    for path, value in sorted(overrides.items()):
        if isinstance(value, dict):
            if value:
                parts.append(" ".join(f"{k}={short(v)}" for k, v in sorted(value.items())))
        elif isinstance(value, str):
            parts.append(value)
        else:
            parts.append(f"{path.split('.')[-1]}={short(value)}")
    return ", ".join(parts) or "base"


def short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def selects(selector: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """Does an arm (its axis values) match a claim's selector (axis name -> value)?"""
    by_name = {path.split(".")[-1]: value for path, value in overrides.items()}
    return all(key in by_name and by_name[key] == value for key, value in selector.items())

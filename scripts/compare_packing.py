"""Compare two results databases run key by run key when one engine packs runs the other did not.

    python scripts/compare_packing.py BEFORE.db AFTER.db [--study NAME ...]

A run the engine trains alone today (`packed.packable` is False for its stored configuration)
must be equal in everything (status, metrics, error, history but `time`, artifacts), as
`compare_databases.py` checks. A run it packs may differ by float32 rounding grown over its
steps: for those, the largest absolute difference of every metric, history column and
artifact number is printed, with the run where it is largest, and every change of status or
of an integer metric (a best epoch, a step) is listed. Exits 1 if a run trained alone differs
or a status changed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from compare_databases import load  # noqa: E402

HISTORY = ("epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def packs(config: dict) -> bool:
    """Does today's engine train a run of this stored configuration in a pack?"""
    from study.engine.studies.expansion import RunSpec
    from study.engine.studies.run_schema import RunConfig
    from study.engine.training.packed import packable

    run_config = RunConfig.model_validate(config, context={"light": True})
    return packable(RunSpec("", "", 0, "", {}, config, run_config))


def numbers(value, path=""):
    """(path, number) of every float in a JSON value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, int):
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item, f"{path}[]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--study", action="append")
    args = parser.parse_args()
    before, after = load(args.before, args.study), load(args.after, args.study)
    import sqlite3

    configs = {key: json.loads(config) for key, config in sqlite3.connect(
        f"file:{args.after}?mode=ro", uri=True).execute("SELECT key, config FROM runs")}
    shared = sorted(set(before) & set(after))
    alone_differ, status_changes, integer_changes = [], [], []
    largest: dict[str, tuple[float, str]] = {}
    counts = {"alone": 0, "alone identical": 0, "packed": 0, "packed identical": 0}
    for key in shared:
        a, b = before[key], after[key]
        packed = packs(configs[key])
        kind = "packed" if packed else "alone"
        counts[kind] += 1
        same = all(a[part] == b[part] for part in ("status", "metrics", "error", "history",
                                                   "artifacts"))
        counts[f"{kind} identical"] += same
        if same:
            continue
        where = f"{key} ({a['study']})"
        if not packed:
            alone_differ.append(where)
            continue
        if a["status"] != b["status"]:
            status_changes.append(f"{where}: {a['status']} -> {b['status']}")
            continue
        for name in a["metrics"].keys() | b["metrics"].keys():
            x, y = a["metrics"].get(name), b["metrics"].get(name)
            if isinstance(x, float) and isinstance(y, float):
                _note(largest, f"metric {name}", _gap(x, y), where)
            elif x != y:
                integer_changes.append(f"{where}: {name} {x} -> {y}")
        for row_a, row_b in zip(a["history"], b["history"]):
            for column, x, y in zip(HISTORY, row_a, row_b):
                if isinstance(x, float) and isinstance(y, float):
                    _note(largest, f"history {column}", _gap(x, y), where)
        for name in a["artifacts"].keys() & b["artifacts"].keys():
            for (path, x), (_, y) in zip(numbers(a["artifacts"][name]),
                                         numbers(b["artifacts"][name])):
                _note(largest, f"artifact {name}.{path}", _gap(x, y), where)
    print(f"{len(shared)} shared runs ({len(set(before) - set(after))} only before, "
          f"{len(set(after) - set(before))} only after)")
    print(f"trained alone: {counts['alone']} runs, {counts['alone identical']} identical")
    print(f"packed: {counts['packed']} runs, {counts['packed identical']} identical")
    for line in alone_differ[:20]:
        print(f"  DIFFERS although trained alone: {line}")
    for line in status_changes[:20]:
        print(f"  status changed: {line}")
    print(f"  integer metrics changed in {len(integer_changes)} packed runs"
          + ("" if not integer_changes else f", e.g. {integer_changes[0]}"))
    for what, (difference, where) in sorted(largest.items(), key=lambda item: -item[1][0]):
        print(f"  largest |difference| of {what}: {difference:.3g} ({where})")
    return 1 if alone_differ or status_changes else 0


def _gap(x: float, y: float) -> float:
    """|x - y|, 0 for the same non-finite value (a diverged run's NaN loss), inf for another."""
    if x == y or (math.isnan(x) and math.isnan(y)):
        return 0.0
    difference = abs(x - y)
    return math.inf if math.isnan(difference) else difference


def _note(largest, what: str, difference: float, where: str) -> None:
    if difference > largest.get(what, (-1.0, ""))[0]:
        largest[what] = (difference, where)


if __name__ == "__main__":
    sys.exit(main())

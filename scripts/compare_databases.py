"""Compare two results databases run key by run key: what each run computed, not when.

    python scripts/compare_databases.py BEFORE.db AFTER.db [--study NAME ...] [--shared]

For every run key of either database: status, metrics, error class, every history row (all
columns but `time`) and every artifact must be equal. Prints the differences and exits 1 if
there are any; a refactor that keeps every stored number exits 0. Plain sqlite3, no `study`
import, so it judges the engine from outside.

`--shared` compares only the runs both databases hold, and of their metrics only those both
record (a metric the engine added since, e.g. `test_accuracy_gap`, is counted, not compared):
for an engine change that adds runs and metrics but must keep every number it had.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys


def load(path: str, studies: list[str] | None) -> dict[str, dict]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    where = f"WHERE study IN ({','.join('?' * len(studies))})" if studies else ""
    runs = {}
    for key, study, status, metrics, error in connection.execute(
            f"SELECT key, study, status, metrics, error FROM runs {where}", studies or ()):
        runs[key] = {"study": study, "status": status, "metrics": json.loads(metrics),
                     "error": (error or "").split(":")[0], "history": [], "artifacts": {}}
    columns = ("epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
    for row in connection.execute(f"SELECT run_key, {', '.join(columns)} FROM history "
                                  f"ORDER BY run_key, epoch"):
        if row[0] in runs:
            runs[row[0]]["history"].append(row[1:])
    for key, name, value in connection.execute("SELECT run_key, name, value FROM artifacts"):
        if key in runs:
            runs[key]["artifacts"][name] = json.loads(value)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--study", action="append", help="only these studies (repeatable)")
    parser.add_argument("--shared", action="store_true",
                        help="only the runs, and metrics, that both databases hold")
    args = parser.parse_args()
    before, after = load(args.before, args.study), load(args.after, args.study)
    shared = set(before) & set(after)
    differences, added = [], set()
    if args.shared:
        before = {key: before[key] for key in shared}
        after = {key: after[key] for key in shared}
        for key in shared:
            names = before[key]["metrics"].keys() & after[key]["metrics"].keys()
            added |= after[key]["metrics"].keys() - names
            for run in (before[key], after[key]):
                run["metrics"] = {name: run["metrics"][name] for name in names}
    differences += [f"only in {args.before}: {key}" for key in sorted(set(before) - set(after))]
    differences += [f"only in {args.after}: {key}" for key in sorted(set(after) - set(before))]
    for key in sorted(shared):
        for part in ("status", "metrics", "error", "history", "artifacts"):
            if before[key][part] != after[key][part]:
                differences.append(f"{key} ({before[key]['study']}): {part} differs")
    if added:
        print(f"metrics only the second database records (not compared): {', '.join(sorted(added))}")
    for line in differences[:50]:
        print(line)
    rows = sum(len(r["history"]) for r in before.values())
    artifacts = sum(len(r["artifacts"]) for r in before.values())
    print(f"{len(before)} runs / {len(after)} runs, {rows} history rows, {artifacts} artifacts: "
          f"{'identical' if not differences else f'{len(differences)} differences'}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())

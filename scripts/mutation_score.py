"""The score of the last `mutmut run`, per module, and what survived (`make mutate`).

A mutant is caught when a test failed on it or it made the tests time out. Each survivor is
either listed, with why no observable behaviour differs, in tests/mutation/<module>.md
("judged equivalent"), or printed as a gap to close with a test. Exits 1 when fewer than
90% of the mutants are caught, or when mutmut has not run.

    python scripts/mutation_score.py [--results FILE] [--equivalent FOLDER]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tests" / "mutation"
BAR = 0.90
CAUGHT = ("killed", "timeout")
LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>[\w ]+?)\s*$")
LISTED = re.compile(r"^- (?P<name>[\w.]+__mutmut_\d+): (?P<why>.+)$")


def statuses(results_text: str) -> dict[str, str]:
    """Mutant name -> status, from the lines of `mutmut results --all true`."""
    found = {}
    for line in results_text.splitlines():
        match = LINE.match(line)
        if match:
            found[match["name"]] = match["status"]
    return found


def module_of(mutant: str) -> str:
    """'study.report.pages.x_escape__mutmut_4' -> 'study.report.pages'."""
    return mutant.rsplit(".x_", 1)[0] if ".x_" in mutant else mutant.rsplit(".", 1)[0]


def judged_equivalent(folder: Path = EQUIVALENT) -> dict[str, str]:
    """Mutant name -> why it is equivalent, from every tests/mutation/*.md."""
    judged = {}
    for path in sorted(folder.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = LISTED.match(line)
            if match:
                judged[match["name"]] = f"{match['why']} ({path.name})"
    return judged


def score(found: dict[str, str]) -> float:
    return sum(status in CAUGHT for status in found.values()) / len(found)


def report(found: dict[str, str], judged: dict[str, str]) -> str:
    by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    width = max(len(module) for module in by_module)
    lines = [f"{'module':<{width}}  mutants  caught  survived  other   score"]
    for module, counts in sorted(by_module.items()):
        total = sum(counts.values())
        caught = sum(counts[s] for s in CAUGHT)
        other = total - caught - counts["survived"]
        lines.append(f"{module:<{width}}  {total:7d}  {caught:6d}  {counts['survived']:8d}  "
                     f"{other:5d}  {caught / total:6.1%}")
    caught = sum(status in CAUGHT for status in found.values())
    lines.append(f"{'all':<{width}}  {len(found):7d}  {caught:6d}  "
                 f"{sum(s == 'survived' for s in found.values()):8d}  "
                 f"{sum(s not in CAUGHT + ('survived',) for s in found.values()):5d}  "
                 f"{score(found):6.1%}")
    missed = sorted(name for name, status in found.items() if status not in CAUGHT)
    equivalent = [name for name in missed if name in judged]
    gaps = [name for name in missed if name not in judged]
    lines.append(f"\nSurvivors judged equivalent ({len(equivalent)}):")
    lines += [f"  {name}: {judged[name]}" for name in equivalent] or ["  none"]
    lines.append(f"\nSurvivors not judged equivalent - a test to write ({len(gaps)}; "
                 f"see one with `mutmut show NAME`):")
    lines += [f"  {name}: {found[name]}" for name in gaps] or ["  none"]
    stale = sorted(set(judged) - set(missed))
    if stale:
        lines.append(f"\nListed as equivalent but caught or gone ({len(stale)}; the list is "
                     f"out of date): " + ", ".join(stale))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path,
                        help="a saved `mutmut results --all true` output (default: ask mutmut)")
    parser.add_argument("--equivalent", type=Path, default=EQUIVALENT,
                        help="the folder of the lists of equivalent survivors (*.md)")
    args = parser.parse_args(argv)
    if args.results:
        text = args.results.read_text(encoding="utf-8")
    else:
        mutmut = Path(sys.executable).with_name("mutmut")
        text = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=ROOT,
                              capture_output=True, text=True, check=False).stdout
    found = statuses(text)
    if not found:
        print("mutation_score: no mutants found; run `mutmut run` first (make mutate)",
              file=sys.stderr)
        return 1
    print(report(found, judged_equivalent(args.equivalent)))
    caught = score(found)
    verdict = "meets" if caught >= BAR else "is below"
    print(f"\nScore: {caught:.1%} of {len(found)} mutants caught ({verdict} the bar of "
          f"{BAR:.0%}).")
    return 0 if caught >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())

"""scripts/mutation_score.py, the summary `make mutate` prints: the score, and each survivor
either with the reason it was judged equivalent or as a test still to write."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mutation_score.py"

RESULTS = """\
    study.report.pages.x_escape__mutmut_1: killed
    study.report.pages.x_escape__mutmut_4: survived
    study.engine.results.stats.x_holm__mutmut_1: timeout
    study.engine.results.stats.x_holm__mutmut_2: killed
    study.engine.results.stats.x_holm__mutmut_3: survived
    study.engine.results.stats.x_holm__mutmut_4: no tests
"""


def score(tmp_path, results: str):
    saved = tmp_path / "results.txt"
    saved.write_text(results)
    (tmp_path / "pages.md").write_text(
        "# pages\n\n- study.report.pages.x_escape__mutmut_4: `quote=True` dropped: the default\n")
    return subprocess.run([sys.executable, str(SCRIPT), "--results", str(saved),
                           "--equivalent", str(tmp_path)],
                          capture_output=True, text=True)


def test_it_counts_timeouts_as_caught_and_fails_below_ninety_percent(tmp_path):
    result = score(tmp_path, RESULTS)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["study.engine.results.stats", "4", "2", "1", "1", "50.0%"]
    assert lines[2].split() == ["study.report.pages", "2", "1", "1", "0", "50.0%"]
    assert "Score: 50.0% of 6 mutants caught (is below the bar of 90%)." in result.stdout
    # the equivalent one is listed with its reason, the others as gaps
    equivalent, gaps = result.stdout.split("Survivors not judged equivalent")
    assert ("study.report.pages.x_escape__mutmut_4: `quote=True` dropped: the default "
            "(pages.md)") in equivalent
    assert "x_holm__mutmut_3: survived" in gaps and "x_holm__mutmut_4: no tests" in gaps
    assert "x_escape__mutmut_4" not in gaps


def test_it_passes_at_ninety_percent_and_refuses_an_empty_run(tmp_path):
    passing = "".join(f"    study.x.x_f__mutmut_{i}: killed\n" for i in range(9))
    result = score(tmp_path, passing + "    study.x.x_f__mutmut_9: survived\n")
    assert result.returncode == 0 and "Score: 90.0% of 10 mutants caught (meets" in result.stdout
    empty = score(tmp_path, "")
    assert empty.returncode == 1 and "run `mutmut run` first" in empty.stderr

"""The reports from a small real database: built, deterministic, escaped, and opened in a real
browser (headless Chromium from Debian, driven by Playwright).

The database holds the quick form of four studies (every figure kind they use: heatmap,
curves, final, decision boundaries, optimizer paths, histograms) and a tiny study whose texts
(question, claim, arm names, figure title) carry markup, which must show as text; it also
draws the gradients figure. Screenshots go to test-artifacts/reports/.
"""

import html.parser
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from study.cli import main
from study.engine.studies import ConfigError, load_study
from study.report import build
from study.report.charts import script
from tests.dependencies import headless_chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "reports"
QUICK_STUDIES = ["xor", "xor_cloud", "optimizer_paths", "init_histograms"]
HOSTILE = textwrap.dedent('''
    name = "markup"
    question = "Is <script>window.__pwned = 1</script> shown as text?"
    about = "An <img src=x onerror='window.__pwned = 2'> about text."
    seeds = 2
    [data]
    dataset = "xor"
    [model]
    hidden = [2]
    [training]
    optimizer = "adam"
    learning_rate = 0.05
    batch_size = 4
    steps = 40
    log_every = 20
    loss = "binary_cross_entropy"
    record_gradients = true
    [grid]
    activation = ["tanh", "sigmoid"]
    [report]
    names = { "tanh" = "t' onload='window.__pwned = 4' x='", "sigmoid" = "s\\" onerror=\\"window.__pwned = 5\\" y=\\"" }
    [[report.figures]]
    kind = "gradients"
    [[report.figures]]
    kind = "final"
    title = "f' onmouseover='window.__pwned = 6' z='<b>"
    [[claims]]
    id = "markup"
    text = "<script>window.__pwned = 3</script> beats \\"sigmoid\\" ' onclick='window.__pwned = 7'"
    kind = "better"
    metric = "val_accuracy"
    arm = { activation = "tanh" }
    baseline = { activation = "sigmoid" }
''')


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    hostile = folder / "markup.toml"
    hostile.write_text(HOSTILE)
    db = folder / "study.db"
    files = [str(ROOT / "experiments" / f"{name}.toml") for name in QUICK_STUDIES]
    assert main(["run", *files, str(hostile), "--quick", "--db", str(db)]) == 0
    return db


@pytest.fixture(scope="module")
def reports(database, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert main(["report", "--db", str(database), "--out", str(out)]) == 0
    return out


def test_every_study_has_a_page_exports_and_an_index_card(reports):
    names = sorted([*QUICK_STUDIES, "markup"])
    assert sorted(p.stem for p in reports.glob("*.html") if p.stem != "index") == names
    index = (reports / "index.html").read_text()
    for name in names:
        assert f"href='{name}.html'" in index
        assert (reports / name / "summary.csv").is_file()
        assert (reports / name / "runs.csv").is_file()
    assert list((reports / "xor").glob("figure-*-heatmap.svg"))
    assert list((reports / "xor_cloud").glob("figure-*-boundaries.svg"))
    assert list((reports / "optimizer_paths").glob("figure-*-paths.svg"))
    assert list((reports / "init_histograms").glob("figure-*-histograms.svg"))


def test_the_same_database_gives_the_same_files(database, reports, tmp_path):
    again = tmp_path / "again"
    build(database, again)
    first = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_the_same_database_gives_the_same_bytes_in_processes_of_other_hash_seeds(database,
                                                                                 tmp_path):
    # Two processes with different string hashing (PYTHONHASHSEED): any page, table or figure
    # whose order came from a set or a dict keyed by hash would differ.
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"hash{seed}"
        result = subprocess.run([sys.executable, "-m", "study.cli", "report", "--db",
                                 str(database), "--out", str(out)], cwd=ROOT, text=True,
                                capture_output=True, timeout=300,
                                env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        outputs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                        if p.is_file()})
    first, second = outputs
    assert first.keys() == second.keys() and len(first) > 20
    assert [str(k) for k in first if first[k] != second[k]] == []


def test_claims_csv_holds_each_claim_with_its_verdict_and_evidence(database, reports):
    table = pd.read_csv(reports / "markup" / "claims.csv")
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT text, verdict, p_value, p_adjusted, n FROM claims "
                                    "WHERE study = 'markup'").fetchall()
    assert len(table) == len(stored) == 1
    (text, verdict, p_value, p_adjusted, n), row = stored[0], table.iloc[0]
    assert (row["claim"], row["verdict"], row["n"]) == (text, verdict, n)
    assert row["p"] == pytest.approx(p_value) and row["p (Holm)"] == pytest.approx(p_adjusted)


def test_markup_in_study_texts_is_escaped(reports):
    page = (reports / "markup.html").read_text()
    assert "<script>window" not in page and "<img src=x" not in page
    assert ("&lt;script&gt;window.__pwned = 3&lt;/script&gt; beats &#34;sigmoid&#34; "
            "&#39; onclick=&#39;window.__pwned = 7&#39;") in page
    assert "f&#39; onmouseover=&#39;window.__pwned = 6&#39; z=&#39;&lt;b&gt;" in page


def test_the_gradients_figure_is_drawn_from_the_stored_norms(reports):
    # A gradients figure draws nothing when no run stored its norms: the page must show it.
    parser = _Tags()
    parser.feed((reports / "markup.html").read_text())
    alts = [attributes.get("alt") or "" for tag, attributes in parser.tags if tag == "img"]
    drawn = [alt for alt in alts if alt.startswith("Line chart, log scale: the gradient's norm")]
    assert len(drawn) == 1, alts
    assert "the smallest median norm is " in drawn[0] and "t' onload=" in drawn[0] + "".join(alts)
    assert (reports / "markup").is_dir() and any((reports / "markup").glob("*gradients*.svg"))


@pytest.mark.parametrize("name", ["x' onload='y", "<b>", "a b", "../up", "Caps"])
def test_a_study_name_that_could_leave_a_link_or_a_file_name_is_refused(tmp_path, name):
    # The name becomes the page's file name and the index's href: only [a-z0-9_-] may.
    study = tmp_path / "named.toml"
    study.write_text(HOSTILE.replace('name = "markup"', f"name = {json.dumps(name)}"))
    with pytest.raises(ConfigError, match=r"named.toml: name: .* is not allowed: String should "
                                          r"match pattern '\^\[a-z0-9\]\[a-z0-9_\\-\]\*\$'"):
        load_study(study)


class _Tags(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, and the text of each script element."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append("")
            self.in_script = True

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1] += data


def test_hostile_names_stay_inside_every_attribute_of_every_page(reports):
    # Arm display names that try to close an attribute (' and ") and add an event handler:
    # on every page, no element gains an on* attribute, the only scripts are the charts'
    # bundle (a data: URI of the package's code) and their JSON data (not run), and the names
    # are shown as the text they are, in the HTML and in the charts' data.
    tags, chart_texts = {}, []
    for page in sorted(reports.glob("*.html")):
        parser = _Tags()
        parser.feed(page.read_text())
        tags[page.stem] = parser.tags
        scripts = iter(parser.scripts)
        for tag, attributes in parser.tags:
            handlers = [name for name in attributes if name.startswith("on")]
            assert not handlers, (page.name, tag, attributes)
            if tag != "script":
                continue
            text = next(scripts)
            if "src" in attributes:
                assert attributes == {"src": script.uri(), "defer": None}, page.name
                assert text == "", page.name
            else:
                assert attributes == {"type": "application/json", "class": "chart-data"}
                if page.stem == "markup":
                    chart_texts.append(json.dumps(json.loads(text), ensure_ascii=False))
    texts = [value for _, attributes in tags["markup"] for value in attributes.values() if value]
    assert any("t' onload='window.__pwned = 4' x='" in text for text in texts)
    assert any('s" onerror="window.__pwned = 5" y="' in text for text in texts)
    # The final figure's chart holds both names as data (JSON strings) and its hostile title.
    assert any("t' onload='window.__pwned = 4' x='" in text for text in chart_texts)
    assert any('s\\" onerror=\\"window.__pwned = 5\\" y=\\"' in text for text in chart_texts)
    assert any("f' onmouseover='window.__pwned = 6' z='<b>" in text for text in chart_texts)


def test_pages_open_in_a_real_browser(reports):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = sorted(reports.glob("*.html"))
    with headless_chromium() as browser:
        for path in pages:
            problems = _visit(browser, path)
            assert problems == [], f"{path.name}: {problems}"


def _visit(browser, path: Path) -> list[str]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"network request: {r.url}")
            if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.alt])")
    if path.stem != "markup":
        assert images, f"{path.name} shows no image"
    for complete, width, height, alt in images:
        if not (complete and width > 0 and height > 0):
            problems.append(f"image not decoded ({width} x {height}): {alt[:60]}")
        if not alt.strip():
            problems.append("image without alt text")
    for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
        target = urlparse(href)
        if target.scheme != "file":
            problems.append(f"link leaves the report: {href}")
        elif not Path(unquote(target.path)).is_file():
            problems.append(f"broken link: {href}")
    if page.evaluate("window.__pwned") is not None:
        problems.append("markup from a study file ran as script")
    page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"), full_page=False)
    page.close()
    return problems


def test_report_command_says_what_is_wrong_with_a_missing_database(tmp_path):
    result = subprocess.run([sys.executable, "-m", "study", "report", "--db",
                             str(tmp_path / "none.db"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "none.db: no such results database" in result.stderr
    assert "Traceback" not in result.stderr

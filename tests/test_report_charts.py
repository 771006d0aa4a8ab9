"""The report's interactive charts: their data are the database's numbers, and in a real browser
(headless Chromium) every chart draws, its tooltips name the arm, seed and value stored for
the point under the pointer, and its legend toggles arms.

Database: the quick forms of xor (heatmap, learning curves), optimizer_paths (paths, final
distance), optimizer_landscapes (paths over learning rates), init_histograms (the layers'
histograms) and mnist_batchnorm (a heatmap over weight scales). Screenshots after each control is moved go to test-artifacts/reports/charts/.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from study.cli import main
from study.report import data as report_data
from study.report import figures
from study.report.charts import CHARTS, tables
from tests.dependencies import headless_chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "reports" / "charts"
# mnist_batchnorm: a heatmap over settings with argument tables (initializer_args), whose
# text must be made once (a second pass over "std 0.01" once failed the whole report).
STUDIES = ["xor", "optimizer_paths", "optimizer_landscapes", "init_histograms", "mnist_batchnorm"]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    db = tmp_path_factory.mktemp("charts") / "study.db"
    files = [str(ROOT / "experiments" / f"{name}.toml") for name in STUDIES]
    assert main(["run", *files, "--quick", "--db", str(db)]) == 0
    return db


@pytest.fixture(scope="module")
def reports(database, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert main(["report", "--db", str(database), "--out", str(out)]) == 0
    return out


def _charts(database, name: str) -> dict[str, tables.Chart]:
    [study] = report_data.load(database, only=name)
    palette = figures.Palette(study)
    return {spec.kind: CHARTS[spec.kind](study, spec, palette)
            for spec in study.study.report.figures if spec.kind in CHARTS}


def _rows(table: dict) -> list[dict]:
    """loader.js's rows(), in Python: the column table as the chart sees it."""
    out = [{} for _ in range(table["length"])]
    for name, column in table["columns"].items():
        for row, value in zip(out, column if isinstance(column, list) else
                              [None if c < 0 else column["levels"][c] for c in column["codes"]]):
            row[name] = value
    return out


def _stored(database, query: str, *args):
    with sqlite3.connect(database) as connection:
        return connection.execute(query, args).fetchall()


def test_a_column_table_reads_back_as_the_frame_it_came_from():
    import pandas as pd

    frame = pd.DataFrame({"arm": ["a", "b", None, "a"], "seed": [0, 1, 2, 3],
                          "value": [0.123456789, float("nan"), float("inf"), 2.0],
                          "ok": [True, False, True, True]})
    rows = _rows(json.loads(json.dumps(tables.column_table(frame), allow_nan=False)))
    assert rows == [{"arm": "a", "seed": 0, "value": 0.12346, "ok": True},
                    {"arm": "b", "seed": 1, "value": None, "ok": False},
                    {"arm": None, "seed": 2, "value": None, "ok": True},
                    {"arm": "a", "seed": 3, "value": 2, "ok": True}]


def test_the_curves_dots_are_the_stored_history_of_each_seed(database):
    chart = _charts(database, "xor")["curves"]
    rows = _rows(chart.tables["curves"])
    dots = [r for r in rows if r["layer"] == "seed"]
    stored = {(arm, seed, step): loss for arm, seed, step, loss in _stored(
        database, "SELECT r.arm, r.seed, h.step, h.loss FROM history h JOIN runs r "
                  "ON h.run_key = r.key WHERE r.study = 'xor'")}
    assert len(dots) == len(stored)  # quick xor logs 11 steps: every one has its dot
    by_name = _arm_names(database, "xor")
    for dot in dots:
        value = stored[(by_name[dot["arm"]], dot["seed"], dot["step"])]
        assert dot["value"] == pytest.approx(value, rel=1e-4), dot
    medians = [r for r in rows if r["layer"] == "median"]
    for median in medians[:20]:
        same = [d["value"] for d in dots if d["activation"] == median["activation"]
                and d["hidden"] == median["hidden"] and d["step"] == median["step"]]
        assert median["value"] == pytest.approx(float(np.median(same)), rel=1e-4)
        assert median["low"] <= median["value"] <= median["high"]


def _arm_names(database, study: str) -> dict[str, str]:
    """The arm's name as the report shows it -> the arm stored in the database."""
    [results] = report_data.load(database, only=study)
    return dict(zip(results.runs["name"].astype(str), results.runs["arm"]))


def test_the_final_dots_are_the_stored_metric_of_each_run(database):
    chart = _charts(database, "optimizer_paths")["final"]
    dots = [r for r in _rows(chart.tables["final"]) if r["layer"] == "seed"]
    stored = {(arm, seed): value for arm, seed, value in _stored(
        database, "SELECT arm, seed, json_extract(metrics, '$.distance') FROM runs "
                  "WHERE study = 'optimizer_paths' AND status = 'finished'")}
    by_name = _arm_names(database, "optimizer_paths")
    assert len(dots) == len(stored) > 0
    for dot in dots:
        assert dot["value"] == pytest.approx(stored[(by_name[dot["arm"]], dot["seed"])],
                                             rel=1e-4)


def test_the_heatmap_cells_are_the_share_of_seeds_that_solve(database):
    chart = _charts(database, "xor")["heatmap"]
    cells = _rows(chart.tables["cells"])
    runs = _stored(database, "SELECT arm, seed, json_extract(metrics, '$.val_accuracy') "
                             "FROM runs WHERE study = 'xor' AND status != 'failed'")
    by_name = _arm_names(database, "xor")
    [results] = report_data.load(database, only="xor")
    settings = {arm: (report_data.readable(h, "hidden"), report_data.readable(a, "activation"))
                for arm, h, a in
                zip(results.runs["arm"], results.runs["hidden"], results.runs["activation"])}
    assert len(cells) == len(set(settings.values()))
    for cell in cells:
        seeds = sorted(seed for arm, seed, value in runs
                       if settings[arm] == (cell["hidden"], cell["activation"]) and value >= 1.0)
        total = sum(1 for arm, _, _ in runs if settings[arm] == (cell["hidden"],
                                                                  cell["activation"]))
        assert cell["value"] == pytest.approx(len(seeds) / total)
        assert cell["seeds"] == (", ".join(map(str, seeds)) or "none")
    assert by_name


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as launched:
        yield launched


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"network request: {r.url}")
            if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("document.body.dataset.charts === 'drawn'", timeout=30_000)
    return page, problems


def test_every_chart_draws_and_hides_its_static_figure(reports, browser):
    for name in STUDIES:
        page, problems = _open(browser, reports / f"{name}.html")
        states = page.eval_on_selector_all("figure[data-chart]", "els => els.map(e => [e.dataset"
                                           ".state, getComputedStyle(e.querySelector('img'))"
                                           ".display, e.querySelector('.chart svg, .chart canvas')"
                                           " !== null])")
        assert states and all(s == ["drawn", "none", True] for s in states), (name, states)
        assert problems == [], problems
        page.close()


def _tooltip(page) -> dict[str, str]:
    """vega-tooltip's table under the pointer, as {key: value}."""
    page.wait_for_selector("#vg-tooltip-element.visible", timeout=5_000)
    rows = page.eval_on_selector_all("#vg-tooltip-element tr", "rows => rows.map(r => "
                                     "[r.querySelector('.key').textContent, "
                                     "r.querySelector('.value').textContent])")
    return {key.rstrip(":"): value for key, value in rows}


def test_hovering_a_learning_curve_dot_shows_its_stored_arm_seed_step_and_value(
        database, reports, browser):
    page, problems = _open(browser, reports / "xor.html")
    figure = page.locator("figure[data-chart]").filter(has_text="Training loss: which")
    dots = figure.locator("g.mark-symbol.role-mark path")  # not the legend's symbols
    stored = {(arm, seed, step): loss for arm, seed, step, loss in _stored(
        database, "SELECT r.arm, r.seed, h.step, h.loss FROM history h JOIN runs r "
                  "ON h.run_key = r.key WHERE r.study = 'xor'")}
    by_name = _arm_names(database, "xor")
    checked = 0
    for i in range(3, dots.count(), 11):  # 11: not a divisor of a step's dots, so steps vary
        dots.nth(i).scroll_into_view_if_needed()
        box = dots.nth(i).bounding_box()
        if box is None or box["width"] == 0:
            continue
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        on_top = page.evaluate("([x, y]) => document.elementFromPoint(x, y)"
                               ".getAttribute('aria-roledescription')", [x, y])
        if on_top != "circle":  # an axis line over a dot at the chart's edge
            continue
        page.mouse.move(x, y)
        shown = _tooltip(page)
        value = stored[(by_name[shown["arm"]], int(shown["seed"]), int(shown["step"]))]
        assert float(shown["loss"]) == pytest.approx(value, rel=1e-3), shown
        checked += 1
    assert checked >= 8
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figure.screenshot(path=str(ARTIFACTS / "xor-curves-tooltip.png"))
    assert problems == [], problems
    page.close()


def test_hovering_a_heatmap_cell_names_its_share_and_seeds(database, reports, browser):
    page, problems = _open(browser, reports / "xor.html")
    figure = page.locator("figure[data-chart]").nth(0)
    cells = figure.locator("g.mark-rect.role-mark path")  # not the colour legend's
    assert cells.count() == 4  # quick xor: 2 architectures x 2 activations
    cells.nth(0).scroll_into_view_if_needed()
    box = cells.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    shown = _tooltip(page)
    assert set(shown) >= {"hidden", "activation", "runs"}
    runs = _stored(database, "SELECT hidden, activation, val FROM (SELECT json_extract(config, "
                             "'$.model.hidden') AS hidden, json_extract(config, "
                             "'$.model.activation') AS activation, json_extract(metrics, "
                             "'$.val_accuracy') AS val FROM runs WHERE study = 'xor')")
    same = [val for hidden, activation, val in runs
            if report_data.readable(json.loads(hidden), "hidden") == shown["hidden"]
            and report_data.readable(activation, "activation") == shown["activation"]]
    assert int(shown["runs"]) == len(same) > 0
    share = [v for k, v in shown.items() if k.startswith("share")][0]
    assert float(share) == pytest.approx(sum(v >= 1.0 for v in same) / len(same), abs=1e-3)
    assert problems == [], problems
    page.close()


def test_clicking_a_legend_entry_fades_the_other_arms(reports, browser):
    page, problems = _open(browser, reports / "optimizer_paths.html")
    figure = page.locator("figure[data-chart]").filter(has_text="Distance to the minimum")
    figure.scroll_into_view_if_needed()
    before = figure.screenshot()
    entries = figure.locator("g.role-legend-symbol path")
    assert entries.count() >= 2
    entries.nth(0).click()
    page.wait_for_timeout(300)
    after = figure.screenshot()
    assert before != after
    opacities = figure.locator("g.mark-symbol.role-mark path").evaluate_all(
        "els => els.map(e => Number(e.getAttribute('opacity') ?? e.style.opacity ?? 1))")
    faded = [o for o in opacities if o < 0.1]
    assert faded and len(faded) < len(opacities), opacities
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "optimizer_paths-final-legend.png").write_bytes(after)
    assert problems == [], problems
    page.close()


def _readouts(figure) -> list[str]:
    return [t for t in figure.locator("g.mark-text.role-mark text").all_text_contents() if t]


def test_the_learning_rate_slider_and_seed_picker_redraw_paths_and_read_out_stored_numbers(
        database, reports, browser):
    page, problems = _open(browser, reports / "optimizer_landscapes.html")
    figure = page.locator("figure[data-chart]").first
    figure.scroll_into_view_if_needed()
    slider = figure.locator("input[type=range]")
    picker = figure.locator("select")
    runs = _stored(database, "SELECT json_extract(config, '$.data.dataset'), "
                             "json_extract(config, '$.training.optimizer'), "
                             "json_extract(config, '$.training.learning_rate'), seed, "
                             "json_extract(metrics, '$.distance'), "
                             "json_extract(metrics, '$.path_length'), status FROM runs "
                             "WHERE study = 'optimizer_landscapes'")
    rates = sorted({rate for _, _, rate, *_ in runs})
    seeds = sorted({seed for _, _, _, seed, *_ in runs})
    pictures = set()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for rank, rate in enumerate(rates):
        for seed in seeds:
            slider.fill(str(rank))
            picker.select_option(str(seed))
            page.wait_for_timeout(200)
            texts = _readouts(figure)
            header = f"learning rate {rate:.3g}, seed {seed}"
            assert header in texts, (header, texts)
            # Each stored run at this rate and seed has its line (one panel per function),
            # with its numbers as stored; no other line.
            lines = [t for t in texts if t != header and not t.startswith("learning rate")]
            for function, optimizer, run_rate, run_seed, distance, length, status in runs:
                if (run_rate, run_seed) != (rate, seed):
                    continue
                match = [line for line in lines if _reads(line, optimizer, distance, length,
                                                           status)]
                assert match, (function, optimizer, distance, length, lines)
                lines.remove(match[0])
            assert lines == []
            picture = figure.screenshot()
            pictures.add(picture)
            (ARTIFACTS / f"landscapes-rate{rank}-seed{seed}.png").write_bytes(picture)
    assert len(pictures) == len(rates) * len(seeds)  # every rate and start draws other paths
    assert problems == [], problems
    page.close()


def _reads(line: str, optimizer: str, distance: float, length: float, status: str) -> bool:
    """Whether a read-out line shows this run: "sgd: distance 1.55, path length 1.01"."""
    shown = re.fullmatch(r"(\w+): distance (\S+), path length (\S+)( \((\w+)\))?", line)
    assert shown, line
    return (shown[1] == report_data.readable(optimizer, "optimizer")
            and float(shown[2]) == pytest.approx(distance, rel=6e-3)
            and float(shown[3]) == pytest.approx(length, rel=6e-3)
            and (shown[5] or "finished") == status)


def _boundary_figure(page):
    figure = page.locator("figure[data-chart]").filter(has=page.locator("button.play"))
    assert figure.count() == 1
    return figure


def _frame_shown(page, figure, key: str):
    """The boundary's rows once the page shows the frame `key` ("arm|seed@step")."""
    handle = figure.element_handle()
    page.wait_for_function("([f, key]) => f.dataset.frame === key", arg=[handle, key],
                           timeout=10_000)
    return figure.evaluate("f => f.chartView.data('grid').map(r => [r.x, r.y, r.p])")


def test_the_step_slider_and_seed_picker_move_the_boundary_and_read_out_stored_numbers(
        database, reports, browser):
    from study import boundary_frames
    from study.report.charts.boundary_steps import frame_rows

    page, problems = _open(browser, reports / "xor.html")
    figure = _boundary_figure(page)
    figure.scroll_into_view_if_needed()
    [results] = report_data.load(database, only="xor")
    frames = results.artifacts(boundary_frames.ARTIFACT)
    arm = figure.locator("select").first.input_value()
    assert arm == "sigmoid, hidden 5-4"  # xor.toml's figure starts on the book's deep net
    history = results.history
    pictures = []
    for seed in sorted(frames["seed"].unique())[:2]:
        figure.locator("select").nth(1).select_option(str(seed))
        artifact = frames[(frames["name"] == arm) & (frames["seed"] == seed)]["value"].iloc[0]
        for step in artifact["steps"][::3]:
            figure.locator("input[type=range]").fill(str(step))
            grid = _frame_shown(page, figure, f"{arm}|{seed}@{step}")
            expected = frame_rows(artifact, step)
            assert np.allclose(np.asarray(grid), expected[["x", "y", "p"]].to_numpy(),
                               atol=1e-9)
            row = history[(history["name"] == arm) & (history["seed"] == seed)
                          & (history["step"] == step)].iloc[0]
            texts = _readouts(figure)
            line = [t for t in texts if t.startswith(f"step {step}: ")][0]
            shown = re.fullmatch(r"step \d+: loss (\S+), accuracy (\S+)", line)
            assert float(shown[1]) == pytest.approx(row["loss"], rel=1e-3)
            assert float(shown[2]) == pytest.approx(row["val_accuracy"], abs=1e-3)
            at_step = history[(history["name"] == arm) & (history["step"] == step)]
            solved = int((at_step["val_accuracy"] >= 1.0).sum())
            assert f"solved by {solved} of {len(at_step)} seeds" in " ".join(texts)
            pictures.append(figure.screenshot())
    assert len(set(pictures)) == len(pictures)  # each step and seed draws another picture
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "xor-boundary-steps.png").write_bytes(pictures[-1])
    assert problems == [], problems
    page.close()


def test_play_moves_the_step_slider_to_the_end(reports, browser):
    page, problems = _open(browser, reports / "xor.html")
    figure = _boundary_figure(page)
    figure.scroll_into_view_if_needed()
    slider = figure.locator("input[type=range]")
    last = slider.get_attribute("max")
    figure.locator("button.play").click()
    page.wait_for_function("([f, last]) => f.chartView.signal('step') == last",
                           arg=[figure.element_handle(), last], timeout=20_000)
    assert slider.input_value() == last  # the slider follows its signal
    assert figure.locator("button.play").text_content() == "▶ play"  # stopped at the end
    assert figure.evaluate("f => f.dataset.frame").endswith(f"@{last}")
    (ARTIFACTS / "xor-boundary-played.png").write_bytes(figure.screenshot())
    assert problems == [], problems
    page.close()


def test_the_initialiser_picker_redraws_every_layer_and_reads_out_its_stored_numbers(
        database, reports, browser):
    page, problems = _open(browser, reports / "init_histograms.html")
    figure = page.locator("figure[data-chart]").first
    figure.scroll_into_view_if_needed()
    picker = figure.locator("select")
    [results] = report_data.load(database, only="init_histograms")
    arms = picker.locator("option").all_text_contents()
    assert arms == results.names
    pictures = []
    for arm in arms:
        picker.select_option(arm)
        page.wait_for_timeout(150)
        texts = _readouts(figure)
        runs = results.runs[results.runs["name"] == arm]
        assert len(texts) == 5  # one line of numbers per hidden layer
        for layer, text in enumerate(texts, start=1):
            shown = re.fullmatch(r"std (\S+), saturated (\S+?)%?, dead (\S+?)%?", text)
            assert shown, text
            for kind, value, scale in (("std", shown[1], 1), ("saturated", shown[2], 100),
                                       ("dead", shown[3], 100)):
                stored = runs[f"layer{layer}_{kind}"].astype(float).dropna()
                if value == "n/a":  # a metric the activation does not have (dead sigmoid)
                    assert stored.empty, (arm, layer, kind)
                    continue
                assert float(value) == pytest.approx(float(np.median(stored)) * scale,
                                                     rel=5e-3, abs=0.051), (arm, layer, kind)
        pictures.append(figure.screenshot())
    assert len(set(pictures)) == len(arms)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "init-histograms-last-arm.png").write_bytes(pictures[-1])
    assert problems == [], problems
    page.close()


def test_without_javascript_and_in_print_every_figure_is_the_static_svg(reports, browser):
    for name in STUDIES:
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto((reports / f"{name}.html").as_uri(), wait_until="load")
        shown = page.eval_on_selector_all("figure[data-chart]", "els => els.map(e => [e.querySelect"
                                          "or('img').naturalWidth > 0, getComputedStyle(e.query"
                                          "Selector('img')).display, e.querySelector('.chart')"
                                          ".childElementCount])")
        assert shown and all(s == [True, "inline", 0] for s in shown), (name, shown)
        context.close()
        page, problems = _open(browser, reports / f"{name}.html")
        page.emulate_media(media="print")
        printed = page.eval_on_selector_all("figure[data-chart]", "els => els.map(e => [getCompu"
                                            "tedStyle(e.querySelector('img')).display, getCompu"
                                            "tedStyle(e.querySelector('.chart')).display])")
        assert all(p == ["block", "none"] for p in printed), (name, printed)
        assert problems == [], problems
        page.close()

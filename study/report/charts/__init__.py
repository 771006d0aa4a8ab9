"""Interactive views beside the static figures: Vega-Lite specs, drawn in the page by Vega.

Each static figure of `study.report.figures` may have an interactive twin here, made from the
same study data: `CHARTS[kind](study, spec, palette)` returns a `Chart` (a Vega-Lite spec and
its data tables) or None. The page shows the chart where JavaScript runs and keeps the SVG
figure as the fallback, for printing, and for readers without JavaScript.

Why Vega-Lite: a declarative spec is a plain JSON value, so a page is deterministic and
testable as text; hover tooltips, legends that toggle, sliders and pickers are part of the
grammar (params bound to inputs or to the legend), not code of ours. Its JavaScript (Vega,
Vega-Lite, Vega-Embed: 0.9 MB) comes bundled in the `vl-convert-python` wheel, so a page needs
no CDN and no server: see `script`.

Modules: `tables` (data frames as compact column tables), `script` (the bundled JavaScript
and our loader, `loader.js`), one module per kind of chart.
"""

from __future__ import annotations

from typing import Callable

from study.engine.studies.study_schema import Figure
from study.report.charts import boundary_steps, curves, finals, heatmaps, histograms, paths
from study.report.charts.tables import Chart
from study.report.data import StudyResults

CHARTS: dict[str, Callable[[StudyResults, Figure, Callable[[str], dict]], Chart | None]] = {
    "curves": curves.chart, "final": finals.chart, "heatmap": heatmaps.chart,
    "paths": paths.chart, "boundary_steps": boundary_steps.chart,
    "histograms": histograms.chart,
}

__all__ = ["CHARTS", "Chart"]

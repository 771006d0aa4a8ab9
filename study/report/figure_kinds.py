"""Every kind of figure a study's `[[report.figures]]` can name, and the function that draws it
(`study_schema.FIGURE_KINDS` lists the same kinds)."""

from __future__ import annotations

from typing import Callable

from study.engine.studies.study_schema import Figure
from study.report.data import StudyResults
from study.report.figures import (Drawn, Palette, curves, final, gradients, heatmap,
                                  histograms, search)
from study.report.plane_figures import boundaries, boundary_steps, paths

FIGURES: dict[str, Callable[[StudyResults, Figure, Palette], Drawn | None]] = {
    "curves": curves, "final": final, "heatmap": heatmap, "histograms": histograms,
    "boundaries": boundaries, "paths": paths, "gradients": gradients, "search": search,
    "boundary_steps": boundary_steps,
}

"""`Results.figure` draws every figure kind the report draws, each from what its study stored:
the artifact kinds (histograms, boundaries, paths, gradients) and the search's rounds too.

Each study below is run in its quick form into one database, and every `[[report.figures]]`
entry of its file is drawn through the API with the entry's own options.
"""

from __future__ import annotations

import tomllib

import matplotlib.figure
import pytest

import study
from tests.engine_fixtures import ROOT

# A study for each kind drawn from artifacts or from a search's rounds.
STUDIES = ("init_histograms", "xor_cloud", "optimizer_paths", "mnist_depth",
           "mnist_hparam_search")


def figure_entries():
    for name in STUDIES:
        text = (ROOT / "experiments" / f"{name}.toml").read_text(encoding="utf-8")
        for i, entry in enumerate(tomllib.loads(text)["report"]["figures"]):
            yield pytest.param(name, entry, id=f"{name}-{i}-{entry['kind']}")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    db = tmp_path_factory.mktemp("figures") / "r.db"
    return {name: study.run(ROOT / "experiments" / f"{name}.toml", db=db, quick=True,
                            jobs=1, progress=False) for name in STUDIES}


def test_every_kind_is_covered():
    kinds = {entry.values[1]["kind"] for entry in figure_entries()}
    assert {"histograms", "boundaries", "paths", "gradients", "search"} <= kinds


@pytest.mark.parametrize("name, entry", list(figure_entries()))
def test_each_report_figure_is_drawn_through_the_api(stored, name, entry):
    options = {k: v for k, v in entry.items() if k != "kind"}
    figure = stored[name].figure(entry["kind"], **options)
    assert isinstance(figure, matplotlib.figure.Figure)
    drawn = [axes for axes in figure.axes if axes.has_data()]
    assert drawn, f"{name}: {entry['kind']} drew empty axes"

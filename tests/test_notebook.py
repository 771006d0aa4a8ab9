"""examples/quickstart.ipynb runs top to bottom in a Jupyter kernel of this environment.

The kernel is ipykernel started with this test's own interpreter (a kernelspec written for the
test, so a `python3` kernelspec of another environment on the machine cannot stand in), in a
temporary folder that receives the notebook's database, module and report. Any cell error
fails the test (nbclient's CellExecutionError names the cell). Without nbclient, nbformat or
ipykernel the test skips saying how to install them, and fails on CI.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from tests.dependencies import require_module

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
CELL_TIMEOUT_S = 600
INSTALL = 'pip install -e ".[dev]"'


def test_the_committed_notebook_has_no_outputs():
    nbformat = require_module("nbformat", INSTALL)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_the_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    nbformat = require_module("nbformat", INSTALL)
    nbclient = require_module("nbclient", INSTALL)
    require_module("ipykernel", INSTALL)
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path / "kernels"
    (kernels / "study-env").mkdir(parents=True)
    (kernels / "study-env" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "study (this environment)", "language": "python"}))
    manager = KernelManager(kernel_name="study-env",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    # The kernel imports this checkout's `study` and finds the data folder, as the tests do.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("STUDY_NO_KERAS_DOWNLOAD", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable)")
    notebook.cells.insert(0, probe)
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError on any cell's error

    assert probe.outputs[0]["text"].strip() == sys.executable
    assert (work / "quickstart.db").is_file() and (work / "my_optimizers.py").is_file()
    assert (work / "quickstart-report" / "index.html").is_file()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    figures = [cell for cell in code if ".figure(" in cell.source]
    assert len(figures) >= 2
    for cell in figures:  # each shown once, as a PNG (the inline backend), not as its repr
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell.outputs
        assert base64.b64decode(images[0]["data"]["image/png"])[:4] == b"\x89PNG"
    errors = [o for cell in code for o in cell.outputs if o["output_type"] == "error"]
    assert not errors

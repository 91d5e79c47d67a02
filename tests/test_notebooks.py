"""Every notebook under colab/ runs top to bottom in a real kernel (nbclient), on the shrunk
pipeline's workdir (a copy of the session's `small_run`, so RL runs the notebooks add stay out of
other tests' way) and small settings."""

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "colab")
NOTEBOOKS = sorted(n for n in os.listdir(COLAB) if n.endswith(".ipynb"))
EXPECTED = {"quickstart.ipynb", "explore_a_run.ipynb", "labelling_walkthrough.ipynb",
            "rl_run.ipynb", "evaluate_hf_model.ipynb"}


def test_the_notebooks_are_all_there():
    assert EXPECTED <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, small_run, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    shutil.copytree(small_run[0], workdir)
    monkeypatch.setenv("PRM_JAX_WORKDIR", str(workdir))
    monkeypatch.setenv("PRM_JAX_NOTEBOOK_RL_ITERATIONS", "2")
    monkeypatch.setenv("PRM_JAX_NOTEBOOK_PROBLEMS", "2")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    book = nbformat.read(os.path.join(COLAB, name), as_version=4)
    nbformat.validate(book)  # cell ids present, schema-valid
    # Raises CellExecutionError, naming the cell, if any cell fails.
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": COLAB}}).execute()
    assert all(c.get("execution_count") for c in book.cells if c.cell_type == "code")
    # No progress-bar widget warning, no path hacks.
    text = "".join(o.get("text", "") for c in book.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "IProgress not found" not in text
    assert not any("sys.path.insert" in c.source for c in book.cells)

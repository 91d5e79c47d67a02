"""Notebooks under colab/ run top to bottom on the built-in model."""

import json
import os

import pytest

COLAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "colab")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(COLAB) if n.endswith(".ipynb")))
def test_notebook_runs(name, monkeypatch, tmp_path):
    monkeypatch.chdir(COLAB)
    notebook = json.load(open(os.path.join(COLAB, name)))
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{name}:cell", "exec"), namespace)

"""Progress bars that render in a terminal and in a notebook.

`tqdm.auto` draws a widget in Jupyter/Colab but needs ipywidgets (without it tqdm warns
"IProgress not found" and draws nothing useful), so the widget bar is used only where ipywidgets
can be imported and a notebook kernel is running; everywhere else the text bar (in a notebook it
prints as a stream line, updated in place).
"""

from __future__ import annotations

import importlib.util
import sys


def _in_notebook_with_widgets() -> bool:
    if "ipykernel" not in sys.modules or importlib.util.find_spec("ipywidgets") is None:
        return False
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:  # noqa: BLE001 — any failure means "not a notebook"
        return False


def progress_bar(**kwargs):
    """A tqdm bar (same keyword arguments as `tqdm.tqdm`)."""
    if _in_notebook_with_widgets():
        import tqdm.notebook

        if getattr(tqdm.notebook, "IProgress", None) is not None:  # None: widgets failed to import
            return tqdm.notebook.tqdm(**kwargs)
    from tqdm.std import tqdm as text_bar

    return text_bar(**kwargs)

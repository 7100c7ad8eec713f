"""Sphinx extension: a page's .ipynb download carries the outputs the build executed.

myst-nb 1.4 writes each page's notebook to ``_build/jupyter_execute`` from the notebook it
parsed, not from the one its jupyter-cache client merged the cached outputs into, so every
page served from the cache offered a notebook without outputs. Once all pages are read,
this merges the cached outputs into those files, before sphinx-book-theme copies them to
``_sources`` for the download menu.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def _has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def merge_cached_outputs(app: Sphinx, env: BuildEnvironment) -> list[str]:
    config = env.mystnb_config
    if config.execution_mode != "cache" or not config.execution_cache_path:
        return []
    from jupyter_cache import get_cache

    cache = get_cache(config.execution_cache_path)
    for path in Path(config.output_folder).rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        if _has_outputs(nb):
            continue
        try:
            _, merged = cache.merge_match_into_notebook(nb)
        except KeyError:  # not in the cache: never executed, or its execution failed
            continue
        nbformat.write(merged, path)
    return []


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("env-updated", merge_cached_outputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

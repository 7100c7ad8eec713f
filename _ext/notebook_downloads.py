"""Sphinx extension: a page's .ipynb (download menu, Colab) runs outside this repository.

Three things, for every notebook page:

1. Outputs. myst-nb 1.4 writes each page's notebook to ``_build/jupyter_execute`` from the
   notebook it parsed, not from the one its jupyter-cache client merged the cached outputs
   into, so every page served from the cache offered a notebook without outputs. Once all
   pages are read, this merges the cached outputs into those files, before
   sphinx-book-theme copies them to ``_sources`` for the download menu.
2. A setup cell. The pages import this repository's ``lib``; a downloaded notebook, or one
   opened in Colab, starts with a cell that installs it (from the repository, with the two
   packages the pages use that Colab lacks) when it is not importable, and does nothing
   where it is.
3. Colab. Colab opens only ``.ipynb`` files stored on GitHub, and the pages are MyST ``.md``
   files, so the theme's Colab link would open nothing. The book workflow publishes the
   notebooks of ``_sources`` on a branch (``colab_notebooks_branch``, default
   ``notebooks``); the Colab link of each page points there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

SETUP_TAG = "course-setup"


def _has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def setup_cell_source(repository_url: str, branch: str) -> str:
    """The first cell of every page notebook: install the course's ``lib`` where it is missing."""
    return (
        "# Outside the course's own environment (Colab, a downloaded copy), install the\n"
        "# course library that this page imports. Where it is installed, this does nothing.\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("lib.data") is None:\n'
        f'    %pip install --quiet num2words "dl-course @ git+{repository_url.rstrip("/")}@{branch}"\n'
        "    %pip install --quiet --no-deps d2l==1.0.3"
    )


def add_setup_cell(nb: nbformat.NotebookNode, source: str) -> bool:
    """Put the setup cell first (once); returns whether ``nb`` changed."""
    if nb.cells and SETUP_TAG in nb.cells[0].get("metadata", {}).get("tags", []):
        return False
    nb.cells.insert(0, new_code_cell(source, metadata={"tags": [SETUP_TAG]}))
    return True


def prepare_page_notebooks(app: Sphinx, env: BuildEnvironment) -> list[str]:
    config = env.mystnb_config
    cache = None
    if config.execution_mode == "cache" and config.execution_cache_path:
        from jupyter_cache import get_cache

        cache = get_cache(config.execution_cache_path)
    source = setup_cell_source(app.config.html_theme_options.get("repository_url", ""),
                               app.config.html_theme_options.get("repository_branch", "main"))
    for path in Path(config.output_folder).rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        changed = False
        if cache is not None and not _has_outputs(nb):
            try:  # the cache matches on the page's own cells: merge before adding the setup cell
                _, nb = cache.merge_match_into_notebook(nb)
                changed = True
            except KeyError:  # not in the cache: never executed, or its execution failed
                pass
        changed = add_setup_cell(nb, source) or changed
        if changed:
            nbformat.write(nb, path)
    return []


def point_colab_at_notebooks(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                             doctree: Any) -> None:
    """Runs after sphinx-book-theme made the launch buttons: Colab opens the published .ipynb."""
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") == "Colab" and "/blob/" in button.get("url", ""):
                base = button["url"].split("/blob/")[0]
                button["url"] = f"{base}/blob/{app.config.colab_notebooks_branch}/{pagename}.ipynb"


def setup(app: Sphinx) -> dict[str, bool]:
    app.add_config_value("colab_notebooks_branch", "notebooks", "html")
    app.connect("env-updated", prepare_page_notebooks)
    app.connect("html-page-context", point_colab_at_notebooks, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""_ext/notebook_downloads.py: a page served from jupyter-cache downloads with its outputs."""

import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_ext"))
from notebook_downloads import merge_cached_outputs  # noqa: E402


def page(outputs: bool) -> nbformat.NotebookNode:
    cell = new_code_cell("print(6 * 7)")
    if outputs:
        cell.outputs = [new_output("stream", name="stdout", text="42\n")]
        cell.execution_count = 1
    return new_notebook(cells=[new_markdown_cell("# A page"), cell],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_cached_outputs_are_merged_into_the_download(tmp_path):
    cache = get_cache(tmp_path / "cache")
    cache.cache_notebook_bundle(CacheBundleIn(page(outputs=True), uri="chapters/a.md"), check_validity=False)
    folder = tmp_path / "jupyter_execute" / "chapters"
    folder.mkdir(parents=True)
    nbformat.write(page(outputs=False), folder / "a.ipynb")  # what myst-nb writes for a cached page
    never_run = page(outputs=False)
    never_run.cells = [new_code_cell("print('never run')")]
    nbformat.write(never_run, folder / "b.ipynb")
    config = SimpleNamespace(execution_mode="cache", execution_cache_path=str(tmp_path / "cache"),
                             output_folder=str(tmp_path / "jupyter_execute"))
    assert merge_cached_outputs(None, SimpleNamespace(mystnb_config=config)) == []
    merged = nbformat.read(folder / "a.ipynb", as_version=4)
    assert merged.cells[1].outputs[0]["text"] == "42\n"
    untouched = nbformat.read(folder / "b.ipynb", as_version=4)
    assert not untouched.cells[0].get("outputs")  # not in the cache: left as it was

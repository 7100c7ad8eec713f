"""_ext/notebook_downloads.py: page notebooks carry their outputs and a setup cell; Colab opens them."""

import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
from IPython.core.interactiveshell import InteractiveShell
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_ext"))
from notebook_downloads import (  # noqa: E402
    SETUP_TAG,
    add_setup_cell,
    point_colab_at_notebooks,
    prepare_page_notebooks,
    setup_cell_source,
)

REPOSITORY = "https://github.com/dl-by-doing/course"


def page(outputs: bool) -> nbformat.NotebookNode:
    cell = new_code_cell("print(6 * 7)")
    if outputs:
        cell.outputs = [new_output("stream", name="stdout", text="42\n")]
        cell.execution_count = 1
    return new_notebook(cells=[new_markdown_cell("# A page"), cell],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def sphinx_stubs(tmp_path: Path) -> tuple[SimpleNamespace, SimpleNamespace]:
    config = SimpleNamespace(execution_mode="cache", execution_cache_path=str(tmp_path / "cache"),
                             output_folder=str(tmp_path / "jupyter_execute"))
    app = SimpleNamespace(config=SimpleNamespace(
        html_theme_options={"repository_url": REPOSITORY, "repository_branch": "main"}))
    return app, SimpleNamespace(mystnb_config=config)


def test_cached_outputs_are_merged_and_the_setup_cell_added(tmp_path):
    cache = get_cache(tmp_path / "cache")
    cache.cache_notebook_bundle(CacheBundleIn(page(outputs=True), uri="chapters/a.md"), check_validity=False)
    folder = tmp_path / "jupyter_execute" / "chapters"
    folder.mkdir(parents=True)
    nbformat.write(page(outputs=False), folder / "a.ipynb")  # what myst-nb writes for a cached page
    never_run = page(outputs=False)
    never_run.cells = [new_code_cell("print('never run')")]
    nbformat.write(never_run, folder / "b.ipynb")
    app, env = sphinx_stubs(tmp_path)
    assert prepare_page_notebooks(app, env) == []
    merged = nbformat.read(folder / "a.ipynb", as_version=4)
    nbformat.validate(merged)
    assert merged.cells[0].metadata["tags"] == [SETUP_TAG]
    assert merged.cells[0].source == setup_cell_source(REPOSITORY, "main")
    assert merged.cells[2].outputs[0]["text"] == "42\n"
    untouched = nbformat.read(folder / "b.ipynb", as_version=4)
    assert [c.source for c in untouched.cells] == [setup_cell_source(REPOSITORY, "main"), "print('never run')"]
    assert not untouched.cells[1].get("outputs")  # not in the cache: no outputs to merge
    prepare_page_notebooks(app, env)  # a rebuild: the files are left as they are
    assert nbformat.read(folder / "a.ipynb", as_version=4) == merged


def test_setup_cell_is_added_once():
    nb = page(outputs=False)
    assert add_setup_cell(nb, "pass") is True
    assert add_setup_cell(nb, "pass") is False
    assert [c.cell_type for c in nb.cells] == ["code", "markdown", "code"]


def test_setup_cell_installs_only_where_lib_is_missing(monkeypatch):
    source = setup_cell_source(REPOSITORY + "/", "main")
    shell = InteractiveShell.instance()
    # IPython turns the indented %pip lines into magic calls inside the if-branch.
    python = shell.transform_cell(source)
    assert ("    get_ipython().run_line_magic('pip', 'install --quiet num2words "
            "\"dl-course @ git+https://github.com/dl-by-doing/course@main\"')") in python
    assert "    get_ipython().run_line_magic('pip', 'install --quiet --no-deps d2l==1.0.3')" in python
    installs: list[str] = []
    monkeypatch.setattr(shell, "run_line_magic", lambda name, line, *a, **k: installs.append(f"%{name} {line}"))
    assert shell.run_cell(source).success
    assert installs == []  # lib is importable here: nothing to install
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # as on Colab
    assert shell.run_cell(source).success
    assert [line.split()[:3] for line in installs] == [["%pip", "install", "--quiet"]] * 2
    assert "dl-course @ git+https://github.com/dl-by-doing/course@main" in installs[0]


def test_colab_link_opens_the_published_notebook():
    app = SimpleNamespace(config=SimpleNamespace(colab_notebooks_branch="notebooks"))
    theme_url = "https://colab.research.google.com/github/dl-by-doing/course/blob/main/chapters/rnn/rnn.md"
    binder_url = "https://mybinder.org/v2/gh/dl-by-doing/course/main?urlpath=tree/chapters/rnn/rnn.md"
    context = {"header_buttons": [
        {"label": "download-buttons", "buttons": [{"text": ".md", "url": "x.md"}]},
        {"label": "launch-buttons", "buttons": [{"text": "Binder", "url": binder_url},
                                                {"text": "Colab", "url": theme_url}]},
    ]}
    point_colab_at_notebooks(app, "chapters/rnn/rnn", "page.html", context, None)
    buttons = context["header_buttons"][1]["buttons"]
    assert buttons[1]["url"] == ("https://colab.research.google.com/github/dl-by-doing/course/blob/"
                                 "notebooks/chapters/rnn/rnn.ipynb")
    assert buttons[0]["url"] == binder_url  # Binder opens the .md source on main, as before
    assert context["header_buttons"][0]["buttons"] == [{"text": ".md", "url": "x.md"}]

"""The whole book builds offline with Sphinx warnings as errors, every page executed."""

import re
from pathlib import Path

import pytest
import yaml

from tests.book.conftest import BOOK_BUILD_TIMEOUT, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BOOK_BUILD_TIMEOUT)]  # the first test here may build the book


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    return files


def test_book_builds_without_warnings(book_build):
    status, log = book_build
    assert status == 0, log[-6000:]
    assert not re.search(r"WARNING|ERROR|Traceback", log), log[-6000:]


def test_every_page_is_built_and_executed(book_build):
    html = ROOT / "_build" / "html"
    for page in toc_files():
        out = html / f"{page}.html"
        assert out.is_file(), f"{page} was not built"
        text = out.read_text()
        assert "cell_output" in text or not (ROOT / f"{page}.md").read_text().count("{code-cell}"), f"{page}: no outputs"
        assert "Traceback (most recent call last)" not in text, f"{page} shows an exception"


def test_mathjax_is_served_locally(book_build):
    html = ROOT / "_build" / "html"
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert "cdn.jsdelivr.net" not in text and "mathjax@3" not in text, page
        assert not re.search(r"<script[^>]+src=\"https?://", text), page


def test_pages_import_lib_instead_of_copying_it():
    """Library code appears on pages through show_source, never pasted."""
    import inspect

    import lib

    pages = "\n".join(p.read_text() for p in (ROOT / "chapters").rglob("*.md"))
    for module in sorted(Path(lib.__file__).parent.glob("*.py")):
        src = module.read_text()
        for name in re.findall(r"^def ([a-z]\w+)\(", src, re.M):
            body = inspect.getsource(getattr(__import__(f"lib.{module.stem}", fromlist=[name]), name))
            assert body.strip() not in pages, f"lib.{module.stem}.{name} is pasted into a page"

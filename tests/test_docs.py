"""The docs are doctests: every number they print comes from the code."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOCTEST_PAGES = ["fixedpoint.md", "import_export.md"]


@pytest.mark.parametrize("page", DOCTEST_PAGES)
def test_doc_page_examples_run(page):
    result = doctest.testfile(str(DOCS / page), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{page} has no examples"
    assert result.failed == 0, f"{page}: {result.failed} of {result.attempted} examples failed"


def test_profiles_page_is_generated_from_code():
    from npquant.profiles import format_profiles

    text = (DOCS / "profiles.md").read_text()
    assert format_profiles() in text, "docs/profiles.md is stale: run python tools/gen_docs.py"


def test_the_repository_stands_alone():
    """README and docs link nothing outside the repository, and every ``docs/NAME.md`` that the
    code, tools, README or docs name exists."""
    import re

    root = DOCS.parent
    pages = [root / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        assert "../shared" not in page.read_text(), f"{page.name} links outside the repository"
    sources = pages + sorted(root.glob("npquant/**/*.py")) + sorted(root.glob("tools/*.py"))
    missing = {(src.relative_to(root).as_posix(), ref)
               for src in sources for ref in re.findall(r"docs/([\w-]+\.md)", src.read_text())
               if not (DOCS / ref).exists()}
    assert not missing, f"references to docs pages that do not exist: {sorted(missing)}"


def test_tools_and_the_package_import_no_test_module():
    """The tools and the package stand on the package alone: nothing puts ``tests/`` on
    ``sys.path`` to borrow a test module (the oracle table is ``npquant.testing.oracles``)."""
    import re

    root = DOCS.parent
    borrowed = [src.relative_to(root).as_posix()
                for src in [*sorted(root.glob("tools/*.py")), *sorted(root.glob("npquant/**/*.py"))]
                if re.search(r"""["']tests["']\s*\)?\s*/|["']tests/""", src.read_text())
                and "sys.path" in src.read_text()]
    assert not borrowed, f"these put tests/ on sys.path: {borrowed}"

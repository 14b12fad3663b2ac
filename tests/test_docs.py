"""The documentation: the tutorial pages' code runs as written, and the API page is complete.

(The HTML build itself, with warnings as errors, runs in ``.ci/run``: it needs Sphinx, the
``docs`` extra.)
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import voxrender

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = ["tutorial_fit_textured_volume.rst", "tutorial_simple_nerf.rst"]


def python_blocks(page: Path) -> list[str]:
    """The ``.. code-block:: python`` bodies of an reST page, dedented, in order."""
    text = page.read_text()
    bodies = re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    return [textwrap.dedent(body) for body in bodies]


@pytest.mark.parametrize("page", TUTORIALS)
def test_tutorial_page_runs(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOCS / page)
    assert len(blocks) >= 4, f"{page}: expected its code blocks, found {len(blocks)}"
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__docs__"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{page} block {k}", "exec"), scope)  # the pages assert their results
    assert "loss" in capsys.readouterr().out


def test_api_page_lists_every_public_name():
    text = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:data):: voxrender\.(\w+)\s*$", text, re.M))
    missing = sorted(set(voxrender.__all__) - documented)
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_python_blocks_parser_sees_every_block():
    blocks = python_blocks(DOCS / "tutorial_simple_nerf.rst")
    assert blocks[0].startswith("import torch\n") and "class RadianceField" in blocks[1]
    assert sum(b.count("\n") for b in blocks) > 60  # blank lines inside blocks do not end them

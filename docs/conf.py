"""Sphinx configuration: the API reference from the docstrings (autodoc + napoleon, Google style).

Build: ``pip install -e ".[fit,docs]" && python -m sphinx -W --keep-going -b html docs OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, installed or not

import voxrender  # noqa: E402

project = "voxrender"
author = "the voxrender authors"
copyright = "voxrender authors, BSD-3-Clause"
release = version = voxrender.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields, not duplicates of autodoc's members
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_mock_imports: list[str] = []

exclude_patterns = ["_build", "*.png", "*.gif"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "a drop-in for PyTorch3D's volume renderer, in plain torch"}
nitpicky = False

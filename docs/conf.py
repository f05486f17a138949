"""Sphinx configuration of the sb3_generative documentation (built in the tests with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

with open(os.path.join(os.path.dirname(__file__), "..", "sb3_generative", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

project = "sb3_generative"
author = "sb3_generative developers"
copyright = "2026, sb3_generative developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",  # the long guides are Markdown (guide/usage.md, guide/benchmarks.md)
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = False
# SB3's own classes are documented on SB3's site: their inherited docstrings are not checked here
suppress_warnings = ["autodoc.import_object"]
templates_path: list[str] = []
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
master_doc = "index"
html_theme = "sphinx_rtd_theme"
html_title = f"sb3_generative {__version__}"
doctest_global_setup = """
import os, tempfile
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np
"""

"""The documentation site builds with warnings as errors, and the code on its pages runs (Sphinx's doctest builder;
the examples it includes run in tests/test_examples.py)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("sphinx_rtd_theme")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


@pytest.mark.parametrize("builder", ["html", "doctest"])
def test_docs_build_without_warnings(builder: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MINARI_DATASETS_PATH=str(tmp_path / "minari"))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", builder, DOCS, str(tmp_path / builder)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if builder == "html":
        page = (tmp_path / "html" / "modules" / "gmpg.html").read_text()
        assert "Can I use?" in page and "target_kl" in page  # the parameters come from the docstrings
    else:
        summary = (tmp_path / "doctest" / "output.txt").read_text()
        assert "0 failures in tests" in summary and " 0 tests" not in summary

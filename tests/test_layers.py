"""The package's layers: no module imports from a layer above its own (CONTRIBUTING.md, "Layers")."""

import ast
import pathlib

import pytest

import sb3_generative

ROOT = pathlib.Path(sb3_generative.__file__).parent
#: what each layer may import from the package (itself included); modules at the top level may import anything
ALLOWED = {
    "generative": {"generative"},
    "critics": {"critics"},
    "common": {"common", "generative", "critics"},
    "gmpo": {"gmpo", "common", "generative", "critics"},
    "gmpg": {"gmpg", "common", "generative", "critics"},
}


def package_imports(path: pathlib.Path) -> set[str]:
    """The first sub-package of every ``sb3_generative`` import in a file (``""`` for the top level)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sb3_generative":
                found.add(parts[1] if len(parts) > 1 else "")
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_module_imports_upward(layer: str) -> None:
    files = sorted((ROOT / layer).glob("*.py"))
    assert files, layer
    for path in files:
        imported = package_imports(path)
        # sub-packages are folders; anything else (the top-level modules, "" for the package itself) lies above
        assert imported <= ALLOWED[layer], f"{path.relative_to(ROOT)} imports {sorted(imported - ALLOWED[layer])}"


def test_every_layer_is_known() -> None:
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(ALLOWED) | {"data"}, folders - set(ALLOWED)

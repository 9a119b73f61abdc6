"""The layout docs/DESIGN.md draws is the layout of the code: every module is in its layer table, and every import
of an ablate module (lazy ones inside functions included) goes to a lower layer or stays in the module's own folder."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (\d+) \| `([\w/]+\.py)` \|", re.M)


def design_layers() -> dict[str, int]:
    """Module (`ablate.study.plan`) -> its layer, from the layout table of docs/DESIGN.md."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    return {"ablate." + path.removesuffix(".py").replace("/", "."): int(layer) for layer, path in ROW.findall(text)}


def ablate_imports(path: Path) -> set[str]:
    """Every ablate module a file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ablate"):
            # `from ablate.store import results` imports the module ablate.store.results
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ablate"))
    return found


def test_every_module_is_in_the_design_and_imports_only_go_down():
    layers = design_layers()
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / "ablate").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    assert set(modules) == set(layers), "docs/DESIGN.md's layout table and the modules under ablate/ differ"
    wrong = []
    for name, path in modules.items():
        folder = name.rpartition(".")[0]
        for target in ablate_imports(path) & set(layers):
            same_folder = folder != "ablate" and target.rpartition(".")[0] == folder
            if layers[target] >= layers[name] and not same_folder:
                wrong.append(f"{name} (layer {layers[name]}) imports {target} (layer {layers[target]})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))

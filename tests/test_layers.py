"""The layers of lvcrypt, as an import contract checked on every test run (issue 13 item 2).

Each module belongs to exactly one layer and imports only from its own layer
and the layers below it.  Imports inside functions and under TYPE_CHECKING
count: a lazy import is still a dependency, and a type-only one still ties a
module to the layer it names.  A new module that no layer claims fails the
test until it is placed, so the picture in docs/architecture.md cannot drift.

The checker reads the source with `ast`; it does not import the package, so a
module with a wrong-way import fails here even if nothing ever runs it.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The three rooms and the package each is installed as (pyproject.toml's package-dir).
ROOMS = {"lvcrypt": "lvcrypt", "metadata": "lvcrypt.metadata", "handlers": "lvcrypt.handlers"}


@dataclass(frozen=True)
class Layer:
    name: str
    # Groups of module prefixes; a layer's groups may not import each other (they are independent).
    groups: tuple[tuple[str, ...], ...]


# Bottom first.  A prefix claims the module of that name and everything under it.
LAYERS = (
    Layer("base", (("lvcrypt.__init__", "lvcrypt.errors", "lvcrypt.units", "lvcrypt.crypto",
                    "lvcrypt.atomic_file", "lvcrypt.binary_layout", "lvcrypt.blockfile",
                    "lvcrypt.command_mode", "lvcrypt.records"),)),
    Layer("formats", (("lvcrypt.metadata",), ("lvcrypt.handlers",))),
    Layer("store and model operations", (("lvcrypt.store", "lvcrypt.alloc", "lvcrypt.lvops", "lvcrypt.pvops", "lvcrypt.pv_resize",
                                          "lvcrypt.lv_checks", "lvcrypt.vgops", "lvcrypt.lvsize", "lvcrypt.cryptlv", "lvcrypt.keystores",
                                          "lvcrypt.keycache", "lvcrypt.inuse", "lvcrypt.lv_names",
                                          "lvcrypt.object_names", "lvcrypt.tags",
                                          "lvcrypt.convert_luks", "lvcrypt.conversion_record",
                                          "lvcrypt.extent_mover"),)),
    Layer("activation", (("lvcrypt.activate", "lvcrypt.keyring", "lvcrypt.inline", "lvcrypt.kdump",
                           "lvcrypt.chunk_copy"),)),
    Layer("services", (("lvcrypt.api", "lvcrypt.unlock", "lvcrypt.activation", "lvcrypt.activation_filter",
                         "lvcrypt.encrypted_lv",
                         "lvcrypt.keystore_admin", "lvcrypt.keystore_tokens", "lvcrypt.keystore_header",
                         "lvcrypt.kdump_keys", "lvcrypt.fuse_mount",
                         "lvcrypt.luks_lv_conversion", "lvcrypt.reportfields", "lvcrypt.metadata_text",
                         "lvcrypt.displays", "lvcrypt.extent_map",
                         "lvcrypt.report_select", "lvcrypt.report_time", "lvcrypt.report_segments", "lvcrypt.report_sort", "lvcrypt.report_query", "lvcrypt.report_all",
                         "lvcrypt.report_help", "lvcrypt.report_history", "lvcrypt.report_pvsegments", "lvcrypt.report_joined",
                         "lvcrypt.lv_conversion", "lvcrypt.pv_move", "lvcrypt.property_changes"),)),
    Layer("cli", (("lvcrypt.cli", "lvcrypt.__main__"),)),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(room: Path, package: str, path: Path) -> str:
    parts = path.relative_to(room).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) == 1:
        return f"{package}.__init__" if package == "lvcrypt" else package
    return ".".join([package, *(part for part in parts if part != "__init__")])


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for directory, package in ROOMS.items():
        room = root / directory
        for path in sorted(room.rglob("*.py")):
            found[module_name(room, package, path)] = path
    return found


@functools.cache
def _tree(source: str, filename: str) -> ast.Module:
    return ast.parse(source, filename)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every lvcrypt module `name` imports, wherever in the file the import statement is."""
    found = []
    for node in ast.walk(_tree(path.read_text(), path.name)):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names if alias.name.startswith("lvcrypt")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lvcrypt") and not node.level:
            for alias in node.names:
                # `from lvcrypt import keyring` imports the module lvcrypt.keyring, not the package.
                submodule = f"{node.module}.{alias.name}"
                found.append(Import(name, submodule if submodule in known else node.module, node.lineno))
    return found


def place(module: str) -> tuple[int, int] | None:
    """(layer index, group index) of the longest prefix that claims `module`."""
    best: tuple[int, int, int] | None = None
    for index, layer in enumerate(LAYERS):
        for group_index, group in enumerate(layer.groups):
            for prefix in group:
                if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[2]):
                    best = (index, group_index, len(prefix))
    return None if best is None else best[:2]


def unique(lines: list[str]) -> list[str]:
    """One report per import statement, however many names it imports."""
    return list(dict.fromkeys(lines))


def problems(root: Path) -> list[str]:
    found = modules(root)
    known = set(found) | {name.removesuffix(".__init__") for name in found}
    out = [f"{name}: no layer claims this module (add it to LAYERS in tests/test_layers.py)"
           for name in found if place(name) is None]
    for name, path in found.items():
        where = place(name)
        if where is None:
            continue
        for edge in imports_of(name, path, known):
            target = place(edge.imported if edge.imported != "lvcrypt" else "lvcrypt.__init__")
            if target is None:
                continue
            if target[0] > where[0]:
                out.append(f"{path.relative_to(root)}:{edge.line}: {name} ({LAYERS[where[0]].name}) imports "
                           f"{edge.imported} ({LAYERS[target[0]].name}), a higher layer")
            elif target[0] == where[0] and target[1] != where[1]:
                out.append(f"{path.relative_to(root)}:{edge.line}: {name} imports {edge.imported}: "
                           f"independent parts of the {LAYERS[where[0]].name} layer")
    return unique(out)


def cli_cross_imports(root: Path) -> list[str]:
    """cli modules share only the package (parser, exit codes) and cli/options.py."""
    found = modules(root)
    known = set(found) | {name.removesuffix(".__init__") for name in found}
    allowed = {"lvcrypt.cli", "lvcrypt.cli.options"}
    out = []
    for name, path in found.items():
        if not name.startswith("lvcrypt.cli.") or name == "lvcrypt.cli.options":
            continue
        for edge in imports_of(name, path, known):
            if edge.imported.startswith("lvcrypt.cli") and edge.imported not in allowed:
                out.append(f"{path.relative_to(root)}:{edge.line}: {name} imports {edge.imported}")
    return unique(out)


def test_every_import_points_down_the_layers() -> None:
    assert problems(ROOT) == []


def test_cli_modules_do_not_import_each_other() -> None:
    assert cli_cross_imports(ROOT) == []


def copy_tree(tmp_path: Path) -> Path:
    for directory in ROOMS:
        for path in (ROOT / directory).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return tmp_path


@pytest.mark.parametrize("module, line, expected", [
    ("metadata/model.py", "from lvcrypt.store.lock import VgLock", "lvcrypt.metadata.model (formats) imports "
                                                                    "lvcrypt.store.lock (store and model operations)"),
    ("metadata/model.py", "import lvcrypt.handlers.base", "independent parts of the formats layer"),
    ("lvcrypt/store/commit.py", "    from lvcrypt.cli import main", "imports lvcrypt.cli (cli), a higher layer"),
    ("lvcrypt/errors.py", "from lvcrypt import keyring", "lvcrypt.errors (base) imports lvcrypt.keyring (activation)"),
])
def test_a_wrong_way_import_fails_the_contract(tmp_path: Path, module: str, line: str, expected: str) -> None:
    """The contract is not vacuous: one planted import, even inside a function, is reported."""
    root = copy_tree(tmp_path)
    target = root / module
    body = f"\n\ndef _planted() -> None:\n{line}\n" if line.startswith(" ") else f"\n{line}\n"
    target.write_text(target.read_text() + body)
    reported = [problem for problem in problems(root) if problem not in problems(ROOT)]
    assert len(reported) == 1 and expected in reported[0], reported


def test_a_new_module_must_be_placed(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    (root / "lvcrypt" / "newthing.py").write_text('"""A module nobody placed."""\n')
    assert [problem for problem in problems(root) if problem not in problems(ROOT)] == ["lvcrypt.newthing: no layer claims this module (add it to LAYERS in tests/test_layers.py)"]


def test_a_cli_module_importing_another_fails(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    target = root / "lvcrypt" / "cli" / "pv.py"
    target.write_text(target.read_text() + "\nfrom lvcrypt.cli.report import register\n")
    planted = [problem for problem in cli_cross_imports(root) if problem not in cli_cross_imports(ROOT)]
    assert [problem.split(": ", 1)[1] for problem in planted] == ["lvcrypt.cli.pv imports lvcrypt.cli.report"]

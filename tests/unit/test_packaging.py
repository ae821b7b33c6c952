"""Every third-party module the server imports is a runtime dependency, not only a test one.

A test install has everything, so a missing runtime dependency only shows on a
machine that ran ``make serve`` alone (it happened: the CLI imported httpx).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Imported only inside an engine's factory, after its availability check: an optional extra.
# Imported only inside engines, after their availability check says they are installed.
OPTIONAL = {"gtts", "piper", "onnxruntime", "onnx", "zeroconf"}


def imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tts_trio").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "tts_trio"}


def test_runtime_imports_are_runtime_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {re.split(r"[\[=<>~! ]", requirement)[0].lower() for requirement in pyproject["project"]["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    closure = set(declared)
    # What the declared packages pull in is installed too.
    pending = list(declared)
    while pending:
        name = pending.pop()
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            dependency = re.split(r"[\[=<>~!; (]", requirement)[0].lower()
            if dependency and dependency not in closure:
                closure.add(dependency)
                pending.append(dependency)
    normalized = {name.replace("_", "-") for name in closure}
    missing = []
    for module in sorted(imported_top_level_modules()):
        if module == "RealtimeTTS" or module in OPTIONAL:
            continue  # realtimetts is declared; optional engines say how to install themselves
        providers = {name.lower().replace("_", "-") for name in distributions.get(module, [])}
        if not providers & normalized:
            missing.append(f"{module} (from {sorted(providers) or 'no installed distribution'})")
    assert missing == []

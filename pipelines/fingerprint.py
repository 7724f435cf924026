"""What a step's code is: the source files it can execute, found by following its imports through the project's own
packages, and one hash of them. A step is reused only while this hash is unchanged, so editing the report code
re-runs the steps that import it and never retrains a model."""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("brain_tumor", "steps", "pipelines")
ALWAYS = ("pipelines.executor", "pipelines.config")  # every step runs through these
# Files a module reads as its own code without importing them: report.py renders these templates
READS = {"brain_tumor.report": "brain_tumor/templates"}


def _module_file(module: str, root: Path) -> Path | None:
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every project module `path` imports, at the top or inside functions (a lazy import runs too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


@cache
def code_files(module: str, root: Path = REPO_ROOT) -> tuple[Path, ...]:
    """The project's source files `module` depends on (itself included, and the files READS names), sorted."""
    seen: dict[str, Path] = {}
    read: set[Path] = set()
    todo = [module, *ALWAYS]
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if path is None or name in seen:
            continue
        seen[name] = path
        if name in READS:
            read.update(p for p in (root / READS[name]).rglob("*") if p.is_file())
        todo.extend(_imports(path, name))
        if "." in name:
            todo.append(name.rpartition(".")[0])  # a package's __init__ runs before its modules
    return tuple(sorted(set(seen.values()) | read))


def code_fingerprint(function: str, root: Path = REPO_ROOT) -> str:
    """SHA-256 of the files a step function ("module:function") depends on, with their paths."""
    digest = hashlib.sha256()
    for path in code_files(function.split(":")[0], root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()

"""The house in order (issue 12): imports point down with no cycle, the README maps every top-level module,
and the hot path's hand-written SQL names only what the migrated schema has."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grimp
import pytest

import trollllm

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_import_points_down_the_layers() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "trollllm", tmp_path / "trollllm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    money = tmp_path / "trollllm" / "money.py"
    money.write_text(money.read_text() + "\nfrom trollllm.proxy import routes as _upward  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "trollllm.money -> trollllm.proxy.routes" in result.stdout


def test_no_module_is_in_an_import_cycle_type_checking_imports_included() -> None:
    graph = grimp.build_graph("trollllm", exclude_type_checking_imports=False)
    cycles = [
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(imported, module)
    ]
    assert not cycles


def test_the_readme_module_map_names_every_top_level_module_and_package() -> None:
    readme = (ROOT / "README.md").read_text()
    map_section = readme[readme.index("## Architecture") :]
    names = [info.name for info in pkgutil.iter_modules(trollllm.__path__) if info.name != "__main__"]
    missing = [
        name
        for name in names
        if f"`{name}/`" not in map_section and not re.search(rf"`{name}\.py`", map_section)
    ]
    assert not missing


# --- the hot path's SQL against the migrated schema -----------------------------------------------------


def _program_sql() -> Iterator[tuple[str, str]]:
    """(where, SQL) of every statement a SQL program yields as `Query(<constant or name>, …)`."""
    for info in pkgutil.walk_packages(trollllm.__path__, "trollllm."):
        # No SQL program in these; `asgi` builds the app on import, which would make ./data/secret.key in
        # the working folder (from every pytest-xdist worker at once, a race at collection).
        if info.name.startswith("trollllm.migrations") or info.name.endswith(("__main__", ".asgi")):
            continue
        module = importlib.import_module(info.name)
        source = Path(module.__file__ or "").read_text()
        if "Query(" not in source or "sqlprogram import" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Query" and node.args:
                yield from _statements(info.name, node.args[0], module)


def _statements(where: str, node: ast.expr, module: object) -> Iterator[tuple[str, str]]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield where, node.value
    elif isinstance(node, ast.Name) and node.id in getattr(module, "SQL_VARIANTS", {}):
        # SQL built by its module (a local name): the module lists examples of what it builds.
        for index, sql in enumerate(getattr(module, "SQL_VARIANTS", {})[node.id]):
            yield f"{where}.{node.id}[{index}]", sql
    elif isinstance(node, ast.Name):
        value = getattr(module, node.id)
        assert isinstance(value, str), f"{where}: Query({node.id}) is not a module-level SQL string"
        yield f"{where}.{node.id}", value
    elif isinstance(node, ast.IfExp):
        yield from _statements(where, node.body, module)
        yield from _statements(where, node.orelse, module)
    else:
        raise AssertionError(f"{where}: a Query whose SQL the test cannot see ({ast.unparse(node)})")


PROGRAM_SQL = sorted(set(_program_sql()))
# Statements named `…_PG` are PostgreSQL's only (a program picks them when its runner says it may).
SQLITE_SQL = [(where, sql) for where, sql in PROGRAM_SQL if not where.endswith("_PG")]


def test_the_hot_path_sql_is_found() -> None:
    names = {where.rsplit(".", 1)[-1] for where, _ in PROGRAM_SQL}
    assert {"_RESERVE_ON_USER", "INSERT_LOG", "_SETTLE_USER", "_LOG_STATE"} <= names
    assert len(PROGRAM_SQL) >= 15


@pytest.mark.parametrize(("where", "sql"), SQLITE_SQL, ids=[where for where, _ in SQLITE_SQL])
def test_hot_path_sql_compiles_on_the_migrated_sqlite_schema(
    sqlite_template: Path, where: str, sql: str
) -> None:
    connection = sqlite3.connect(sqlite_template)
    try:
        names = set(re.findall(r"(?<!:):([a-z_]+)", sql))
        connection.execute("EXPLAIN " + sql, dict.fromkeys(names))  # compiles: unknown columns fail here
    finally:
        connection.close()


def _postgres_positional(sql: str) -> str:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"(?<!:):([a-z_]+)", number, sql)


@pytest.mark.parametrize(("where", "sql"), PROGRAM_SQL, ids=[where for where, _ in PROGRAM_SQL])
async def test_hot_path_sql_compiles_on_the_migrated_postgres_schema(
    postgres_template: str, where: str, sql: str
) -> None:
    from conftest import POSTGRES_HOST, POSTGRES_PORT

    connection = await asyncpg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database=postgres_template
    )
    try:
        await connection.prepare(_postgres_positional(sql))  # planned against the schema, not run
    finally:
        await connection.close()

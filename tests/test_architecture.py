"""The floors of the suite hold: data -> backbone -> feature store -> engine -> task heads -> tools.

Read from the source with ``ast`` (nothing is imported), so a new import that breaks a rule fails here with the file
and line, before it becomes a circle or a dependency in the wrong direction.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ('backbone', 'tasks', 'feature_store', 'tools')
TASK_PACKAGES = ('tasks.classification', 'tasks.detection', 'tasks.localization', 'tasks.pretrain', 'tasks.evaluate')
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a name imported from a package counts as its submodule when that exists)
    name: str | None  # the name of a ``from`` import
    path: Path
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def library_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob('*.py'))


MODULES = {module_name(p): p for p in library_files()}


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == '__init__.py' else source.rpartition('.')[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, a.name, None, path, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f'{base}.{alias.name}'
                found.append(Import(source, sub if sub in MODULES else base, alias.name, path, node.lineno))
    return [i for i in found if i.target.split('.')[0] in PACKAGES]


ALL_IMPORTS = [i for p in library_files() for i in imports_of(p)]


def within(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + '.') for p in prefixes)


def where(i: Import) -> str:
    return f'{i.path.relative_to(REPO)}:{i.line}: {i.source} imports {i.target}'


# (importer, what it must not import, why)
RULES = [
    ('tasks.data', ('backbone', 'feature_store', 'tools', 'tasks.engine') + TASK_PACKAGES,
     'the data floor is the lowest'),
    ('backbone', ('tasks', 'feature_store', 'tools'), 'the backbone sits on nothing but torch'),
    ('feature_store', ('tasks.engine', 'tools') + TASK_PACKAGES, 'the feature store sits below the engine and tasks'),
    ('tasks.engine', ('tools',) + TASK_PACKAGES, 'the engine serves every task and knows none'),
    ('tasks', ('tools',), 'nothing imports tools/'),
]


@pytest.mark.parametrize('importer, forbidden, why', RULES, ids=[r[0] for r in RULES])
def test_floor_rules(importer, forbidden, why):
    bad = [where(i) for i in ALL_IMPORTS if within(i.source, importer) and within(i.target, forbidden)]
    assert not bad, f'{why}:\n' + '\n'.join(bad)


def test_task_packages_do_not_import_each_other():
    heads = TASK_PACKAGES[:-2]  # the evaluation suites and the demo run every task's tools and may read their results
    bad = [where(i) for i in ALL_IMPORTS for pkg in heads
           if within(i.source, pkg) and within(i.target, heads) and not within(i.target, pkg)]
    assert not bad, 'a helper two task packages share belongs on a lower floor:\n' + '\n'.join(bad)


def test_no_import_circle():
    graph: dict[str, set[str]] = {}
    for i in ALL_IMPORTS:
        if i.target in MODULES and i.target != i.source:
            graph.setdefault(i.source, set()).add(i.target)
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f'import circles: {circles}'


def test_no_private_name_imported_from_another_module():
    test_files = sorted((REPO / 'tests').rglob('*.py'))
    everything = ALL_IMPORTS + [i for p in test_files for i in imports_of(p)]
    bad = [f'{where(i)} ({i.name})' for i in everything
           if i.name and i.name.startswith('_') and not i.name.startswith('__') and i.target != i.source]
    assert not bad, 'private names used outside their module:\n' + '\n'.join(bad)


def test_file_and_function_sizes():
    too_long = []
    for path in library_files():
        text = path.read_text()
        rel = path.relative_to(REPO)
        if text.count('\n') > MAX_FILE_LINES:
            too_long.append(f'{rel}: {text.count(chr(10))} lines (at most {MAX_FILE_LINES})')
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f'{rel}:{node.lineno}: {node.name} has {length} lines '
                                    f'(at most {MAX_FUNCTION_LINES})')
    assert not too_long, '\n'.join(too_long)


def test_the_rules_see_real_imports():
    """The checks above are not vacuous: the parser finds the imports the floors are made of."""
    targets = {(i.source, i.target) for i in ALL_IMPORTS}
    assert ('feature_store.store', 'tasks.data.video.sampling') in targets or any(
        within(s, 'feature_store') and within(t, 'tasks.data') for s, t in targets)
    assert any(within(s, 'tasks.classification') and within(t, 'backbone') for s, t in targets)
    assert 'tasks.data.video.reader' in MODULES and 'backbone.videomaev2' in MODULES


def test_readme_diagram_names_every_package_and_only_real_ones():
    """The README's Architecture diagram shows the floors as they are: every package it names exists, and every
    package of the suite (backbone, feature_store, tools and each package under tasks/) appears in it."""
    readme = (REPO / 'README.md').read_text()
    section = readme.split('## Architecture', 1)[1].split('\n## ', 1)[0]
    diagram = section.split('```', 2)[1]
    named = set(re.findall(r'\b((?:backbone|feature_store|tools|tasks)(?:/\w+)*)/?', diagram))
    assert all((REPO / name).exists() or (REPO / f'{name}.py').exists() for name in named), named
    packages = {'backbone', 'feature_store', 'tools'} | {f'tasks/{p.name}' for p in (REPO / 'tasks').iterdir()
                                        if (p / '__init__.py').is_file()}
    assert packages <= named, f'packages missing from the README diagram: {sorted(packages - named)}'

"""The import graph of fasternet_mm, read from the source with ``ast``:
no import circle between its modules, the models import only downwards
(layers < backbones, necks < the rest of the package), and only the
benchmark imports the test-side fixtures."""
import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from helpers import REPO

PACKAGE = REPO / 'fasternet_mm'

# What a module under models/ may import from outside models/: the registry,
# the config type hints, the deprecated aliases and the CPU's instruction
# set (the deploy form's memory format), which import nothing of the
# package. The backbone reads the official and timm checkpoint layouts,
# whose home is fasternet_mm.checkpoint (it imports nothing of the models;
# the circle check holds it to that).
OUTSIDE_MODELS = {
    'fasternet_mm.cpu_isa', 'fasternet_mm.deprecation',
    'fasternet_mm.registry', 'fasternet_mm.typing_utils'
}
OUTSIDE_MODELS_EXTRA = {
    'fasternet_mm.models.backbones.fasternet': {'fasternet_mm.checkpoint'}
}
# The fixtures of the tests and the benchmark: what the package runs for
# its users (its export checks included) does without them.
TEST_SIDE = 'fasternet_mm.testing'
TEST_SIDE_USERS = ('fasternet_mm.benchmark', )


def module_names(package: Path) -> Dict[str, Path]:
    """Dotted name of every module of a package, ``__init__`` as the
    package's own name."""
    names = {}
    for path in sorted(package.rglob('*.py')):
        parts = (package.name, ) + path.relative_to(package).with_suffix(
            '').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        names['.'.join(parts)] = path
    return names


def _ancestors(name: str) -> List[str]:
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The package's modules that ``name`` imports, at its top level or
    inside functions alike, each with the packages between it and the
    importer, which Python runs first."""
    is_package = path.name == '__init__.py'
    base = name if is_package else name.rpartition('.')[0]
    named = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split('.')
                parts = parts[:len(parts) - node.level + 1]
                target = '.'.join(parts + [node.module] * bool(node.module))
            else:
                target = node.module
            # ``from pkg import sub`` imports the module pkg.sub; any other
            # name is an attribute of pkg itself.
            subs = {f'{target}.{alias.name}' for alias in node.names}
            subs &= set(modules)
            named.update(subs)
            if len(subs) < len(node.names):
                named.add(target)
    found = set()
    own = set(_ancestors(name))
    for target in named:
        if target not in modules:
            continue
        found.add(target)
        found.update(p for p in _ancestors(target) if p not in own)
    found.discard(name)
    return found


def import_graph(package: Path = PACKAGE) -> Dict[str, Set[str]]:
    modules = module_names(package)
    return {
        name: imports_of(name, path, modules)
        for name, path in modules.items()
    }


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import circle as a list of modules, first repeated at the end,
    or None."""
    done = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                done.add(path.pop())
                stack.pop()
            elif target in path:
                return path[path.index(target):] + [target]
            elif target not in done:
                path.append(target)
                stack.append(iter(sorted(graph[target])))
    return None


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
    """Every import from models/ that goes up: from layers/ to anything
    outside layers/ but the registry, from the rest of models/ to anything
    outside models/ but the registry (and the exceptions named above)."""
    layers = 'fasternet_mm.models.layers'
    models = 'fasternet_mm.models'
    found = []
    for name, targets in sorted(graph.items()):
        if name == layers or name.startswith(layers + '.'):
            allowed = [layers]
        elif name == models or name.startswith(models + '.'):
            allowed = [models]
        else:
            continue
        extra = OUTSIDE_MODELS | OUTSIDE_MODELS_EXTRA.get(name, set())
        for target in sorted(targets):
            inside = any(target == a or target.startswith(a + '.')
                         for a in allowed)
            if not inside and target not in extra:
                found.append(f'{name} -> {target}')
    return found


def fixture_imports(graph: Dict[str, Set[str]]) -> List[str]:
    """Every import of the test-side module from outside its users."""
    return [
        f'{name} -> {TEST_SIDE}' for name, targets in sorted(graph.items())
        if TEST_SIDE in targets and not any(
            name == user or name.startswith(user + '.')
            for user in TEST_SIDE_USERS)
    ]


def test_the_graph_is_read():
    graph = import_graph()
    assert len(graph) >= 25
    assert 'fasternet_mm.models.layers' in graph[
        'fasternet_mm.models.backbones.fasternet']
    assert graph['fasternet_mm.models.layers.csp_layer'] >= {
        'fasternet_mm.models.layers.reparam',
        'fasternet_mm.models.layers.fasternet_block', 'fasternet_mm.registry'
    }
    # An import inside a function counts.
    assert 'fasternet_mm.ops' in graph['fasternet_mm.registry']


def test_no_import_circle():
    assert find_cycle(import_graph()) is None


def test_models_import_only_downwards():
    assert upward_imports(import_graph()) == []


def test_only_the_benchmark_imports_the_test_side_module():
    assert fixture_imports(import_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    package = tmp_path / 'fasternet_mm'
    files = {
        '__init__.py': 'from .deploy import run\n',
        'registry.py': '',
        'deploy.py': 'from .models import Net\n',
        'models/__init__.py': 'from .backbones import Net\n',
        'models/backbones/__init__.py': 'from .net import Net\n',
        'models/backbones/net.py': 'from ..layers import block\n',
        'models/layers/__init__.py': 'from . import block\n',
        'models/layers/block.py': ('from ...registry import MODELS\n'
                                   'def fold():\n'
                                   '    from ...deploy import run\n'),
        'testing.py': '',
        'export/__init__.py': 'from ..testing import compare\n',
        'benchmark.py': 'from .testing import compare\n',
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    graph = import_graph(package)
    assert find_cycle(graph) == [
        'fasternet_mm.deploy', 'fasternet_mm.models',
        'fasternet_mm.models.backbones', 'fasternet_mm.models.backbones.net',
        'fasternet_mm.models.layers', 'fasternet_mm.models.layers.block',
        'fasternet_mm.deploy'
    ]
    assert upward_imports(graph) == [
        'fasternet_mm.models.layers.block -> fasternet_mm.deploy'
    ]
    assert fixture_imports(graph) == [
        'fasternet_mm.export -> fasternet_mm.testing'
    ]


def test_import_in_a_fresh_interpreter():
    script = textwrap.dedent("""
        import fasternet_mm
        from mmengine.registry import MODELS
        print(MODELS.get('PConv') is fasternet_mm.models.partial_conv_layer)
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['True']


@pytest.mark.parametrize('old, new, count', [
    ('builder', 'model_utils', 2),
    ('end_to_end', 'export', 25),
])
def test_old_module_names_re_export_the_new_ones_and_warn(old, new, count):
    script = textwrap.dedent(f"""
        import warnings
        import fasternet_mm.{new} as new
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import fasternet_mm.{old} as old
        print(all(getattr(old, name) is getattr(new, name)
                  for name in old.__all__), len(old.__all__))
        print(*[w.category.__name__ for w in caught])
        print(*[w.message for w in caught])
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    same, categories, message = result.stdout.splitlines()
    assert same == f'True {count}'
    assert categories == 'DeprecationWarning'
    assert f'fasternet_mm.{old} is deprecated' in message

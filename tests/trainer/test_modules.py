"""The package's module structure: every module imports on its own, and no two modules import each other, directly
or round a longer loop (imports inside functions count; `if TYPE_CHECKING:` imports, never run, do not)."""
import ast
import importlib
import os
import pkgutil

import protopnet_trainer

PACKAGE = "protopnet_trainer"
FOLDER = os.path.dirname(protopnet_trainer.__file__)
MODULES = sorted(m.name for m in pkgutil.iter_modules([FOLDER]))


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _runtime_nodes(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if _is_type_checking_block(child):
            continue
        yield child
        yield from _runtime_nodes(child)


def package_imports(module: str) -> set:
    """The package's modules that `module` imports when it runs."""
    with open(os.path.join(FOLDER, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                base = node.module if node.level == 1 else (node.module or "")[len(PACKAGE) + 1:]
                if base:
                    found.add(base.split(".")[0])
                else:   # from . import x: x may be a module
                    found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names
                         if alias.name.startswith(PACKAGE + "."))
    return found - {module}


def find_cycle(graph: dict):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}   # module -> "open" while on the current path, "done" when fully explored

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_every_module_imports():
    for module in MODULES:
        importlib.import_module(f"{PACKAGE}.{module}")


def test_no_module_imports_itself_round_a_loop():
    graph = {module: package_imports(module) for module in MODULES}
    assert graph["pipeline"] >= {"train", "export", "manifest"}       # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_command_line_and_the_job_options_load_without_torch():
    """`--help`, an argument error and the service's option checks stay quick: torch is imported by the commands that
    run a model, not by the parser (cli.TORCHRUN_ENVIRONMENT and job_options.DATASETS are kept torch-free for this)."""
    import subprocess
    import sys
    probe = ("import sys, protopnet_trainer.cli, protopnet_trainer.job_options; "
             "print(sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.path.dirname(FOLDER)}, check=True).stdout.strip()
    assert found == "[]"

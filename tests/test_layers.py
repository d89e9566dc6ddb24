"""The package's layers point one way (docs/architecture.md): a module imports from its own
sub-package or from layers below it, never above, and no two modules import each other in a
circle. Lazy imports inside functions count too: they are arrows all the same. Imports under
`if TYPE_CHECKING:` (names for annotations only) count for the layers but never run, so they
make no circle: a reader may name the type of the collector its caller hands it."""
import ast
from pathlib import Path

import koemo

PACKAGE = Path(koemo.__file__).parent
# Lower number = lower layer. Sub-packages on one level never import each other.
LAYERS = {"errors": 0, "config": 1, "text": 2, "audio": 3, "dataset": 4, "upstreams": 4, "synth": 5,
          "modeling": 5, "inference": 6, "experiments": 6, "reporting": 7, "biosignals": 8,
          "commands": 9, "cli": 10, "__main__": 11, "__init__": 11}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes inside `if TYPE_CHECKING:` blocks (imported for annotations, never run)."""
    return {inner for node in ast.walk(tree)
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
            for statement in node.body for inner in ast.walk(statement)}


def _imports(path: Path, modules: set[str], run_time_only: bool = False) -> set[str]:
    """What a module imports; `from pkg import submodule` is an arrow to the submodule only.
    `run_time_only`: without the imports for annotations alone."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _typing_only(tree) if run_time_only else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "koemo":
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found.update(names & modules or {node.module})
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "koemo")
    return found


def _graph(run_time_only: bool = False) -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): {m for m in _imports(p, modules, run_time_only)
                              if m in modules and m != _module_name(p)}
            for p in paths}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_subpackage_has_a_layer():
    assert {_layer(m) for m in _graph()} <= set(LAYERS)


def test_no_arrow_points_up_or_sideways():
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            src, dst = _layer(module), _layer(target)
            if src != dst and dst != "__init__" and LAYERS[dst] >= LAYERS[src]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_circles():
    graph, state, cycles = _graph(run_time_only=True), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_top_level_keeps_only_entry_points():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__", "cli", "errors"]


# A module past ~500 lines holds more than one concern: split it (docs/architecture.md).
MAX_MODULE_LINES = 500


def test_no_module_outgrows_one_concern():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"split these by concern: {long}"


# A function past ~80 lines does more than one thing: split it by concern.
MAX_FUNCTION_LINES = 80


def long_functions(source: str) -> dict[str, int]:
    """name -> lines of every function (methods and nested ones too) over the limit."""
    return {node.name: n for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES}


def test_the_function_scan_counts_every_line_of_a_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    assert long_functions(f"def fits():\n{body}") == {}
    assert long_functions(f"class C:\n  def over(self):\n{body}    return 1\n") == {
        "over": MAX_FUNCTION_LINES + 1}


def test_no_function_outgrows_one_concern():
    long = {f"{p.relative_to(PACKAGE)}:{name}": n for p in sorted(PACKAGE.rglob("*.py"))
            for name, n in long_functions(p.read_text(encoding="utf-8")).items()}
    assert long == {}, f"split these by concern: {long}"

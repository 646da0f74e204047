"""The package's shape, read from its source: stages import one way, no import circle, no
Prefect in the library, and the torch-free stages stay torch-free when loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_augment"

# Lower stages first: a module may import its own stage and the ones before it, never a later one.
# The command line and the demo are the top: they call every stage.
STAGES = ["lazy", "config_base", "config", "io", "layout", "scan", "gan", "training", "export", "evaluate", "curate",
          "cli", "demo"]
RANK = {stage: min(STAGES.index(stage), STAGES.index("cli")) for stage in STAGES}
# Test support sits beside the stages: nothing in the library imports it.
APART = {"testing"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (a lazy import still ties
    the two stages together)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: {m for m in imported_modules(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the top-level package itself


def test_every_module_belongs_to_a_known_stage():
    unknown = {m for m in MODULES if stage_of(m) not in {None, *STAGES, *APART}}
    assert not unknown, f"modules outside any stage (add the stage to STAGES in its place): {sorted(unknown)}"


def test_imports_run_from_higher_stages_to_lower_ones():
    upward = []
    for module, targets in IMPORTS.items():
        stage = stage_of(module)
        for target in targets:
            target_stage = stage_of(target)
            if stage is None or target_stage is None:
                continue  # the top level re-exports lazily; modules take only __version__ from it
            if target_stage in APART and stage not in APART:
                upward.append(f"{module} -> {target} (test support)")
            elif stage in RANK and target_stage in RANK and RANK[target_stage] > RANK[stage]:
                upward.append(f"{module} -> {target}")
    assert not upward, "a lower stage imports a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_circle():
    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in IMPORTS[todo.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen and not goal.startswith(nxt + "."):
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    # A package importing its own submodules (re-exports) is not a circle; a submodule
    # importing another module that leads back to it is.
    circles = sorted({tuple(sorted((a, b))) for a in IMPORTS for b in IMPORTS[a]
                      if not a.startswith(b + ".") and not b.startswith(a + ".") and reaches(b, a)})
    assert not circles, f"import circles: {circles}"


def test_the_library_never_imports_prefect():
    offenders = [m for m, path in MODULES.items()
                 if any(i == "prefect" or i.startswith("prefect.") for i in imported_modules(path))]
    assert not offenders


def test_the_shape_checks_catch_what_they_guard(tmp_path):
    """The readers above see what they must: a relative import, a lazy import inside a function."""
    module = PACKAGE / "scan" / "listing.py"
    assert "gan_augment.layout" in imported_modules(module)
    assert "gan_augment.io.fsio" in imported_modules(PACKAGE / "layout.py")
    lazy = imported_modules(PACKAGE / "scan" / "cache.py")
    assert "torch" in lazy  # imported inside a function, still seen
    assert stage_of("gan_augment.training.trainer") == "training" and stage_of("gan_augment") is None


@pytest.mark.parametrize("statement", [
    "import gan_augment",
    "import gan_augment.scan",
    "import gan_augment.layout, gan_augment.config, gan_augment.io",
    "from gan_augment import scan_store, ModelConfig, TrainConfig",
    "from gan_augment.cli import build_parser; build_parser().format_help()",
    "import gan_augment.evaluate, gan_augment.evaluate.linear",
    # a labelling round that fits the probe on the labels so far (`margin`) needs its classifier only
    "import numpy as np, types; from gan_augment.curate import select_for_labelling; "
    "x = np.random.default_rng(0).normal(size=(60, 4)).astype('float32'); uris = [f'/s/{i}.png' for i in range(60)]; "
    "picks = select_for_labelling(types.SimpleNamespace(uris=uris, features=x, source='/s', dataset='s'), 5, "
    "labelled={'/s/0.png': 'a', '/s/1.png': 'b', '/s/2.png': 'a'}); assert picks.method == 'margin'",
])
def test_torch_free_stages_do_not_load_torch(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout.strip()
    assert loaded == "[]", f"{statement!r} loaded {loaded}"


def test_a_scan_does_not_load_torch(tmp_path):
    code = ("import sys\n"
            "from PIL import Image\n"
            "from gan_augment import scan_store\n"
            f"root = {str(tmp_path)!r}\n"
            "import os; os.makedirs(root + '/store/ds')\n"
            "[Image.new('L', (8, 8), i).save(f'{root}/store/ds/{i}.png') for i in range(3)]\n"
            "result = scan_store(root + '/store', out=root + '/out')\n"
            "assert result.datasets['ds'].manifest.num_rows == 3\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_public_names_resolve_lazily():
    import gan_augment

    for name in gan_augment.__all__:
        assert getattr(gan_augment, name) is not None
    assert callable(gan_augment.train) and gan_augment.train.__module__ == "gan_augment.training.trainer"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gan_augment.nothing  # noqa: B018
    import gan_augment.evaluate as evaluate

    for name in evaluate.__all__:
        assert getattr(evaluate, name) is not None and name in dir(evaluate)
    with pytest.raises(AttributeError, match="'gan_augment.evaluate' has no attribute 'nothing'"):
        evaluate.nothing  # noqa: B018


# A module is read in one sitting and a function held in mind at once: these bounds leave a
# little room above what the code aims at (about 350 and 60 lines).
MAX_MODULE_LINES, MAX_FUNCTION_BODY_LINES = 400, 60


def test_modules_and_functions_stay_small():
    too_long = []
    for name, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                first = body[1] if has_docstring and len(body) > 1 else body[0]
                if node.end_lineno - first.lineno + 1 > MAX_FUNCTION_BODY_LINES:
                    too_long.append(f"{name}.{node.name}: {node.end_lineno - first.lineno + 1} lines of body")
    assert not too_long, "split these:\n" + "\n".join(too_long)

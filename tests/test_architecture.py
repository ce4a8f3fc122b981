"""The layering and the size of the package, checked on its source: lower layers never import
higher ones, the training and evaluation packages stay apart, no module grows past 400 lines,
and library errors name parameters while the CLI names flags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lowlatseg

PACKAGE = Path(lowlatseg.__file__).parent
LOWER = ("nn", "data", "io", "propagation", "scheduling", "runtime")  # may import none of HIGHER
HIGHER = ("lowlatseg.evaluation", "lowlatseg.train", "lowlatseg.cli")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (absolute names)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_package_is_found() -> None:
    assert len(_modules()) > 50 and all((PACKAGE / p).is_dir() for p in LOWER)


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_import_no_higher_one(layer: str) -> None:
    bad = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p) if any(_within(n, h) for h in HIGHER))
           for p in (PACKAGE / layer).rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize(("package", "other"), [("train", "lowlatseg.evaluation"), ("evaluation", "lowlatseg.train")])
def test_training_and_evaluation_do_not_import_each_other(package: str, other: str) -> None:
    bad = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p) if _within(n, other))
           for p in (PACKAGE / package).rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concept: {long}"


def test_library_errors_name_parameters_and_the_cli_names_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from lowlatseg.cli import flag_of, main
    from lowlatseg.errors import ParameterError
    from lowlatseg.scheduling.policies import check_interval

    with pytest.raises(ParameterError) as e:
        check_interval(0)
    assert str(e.value) == "interval 0 is not valid; it must be at least 1"
    assert e.value.naming(flag_of) == "--interval 0 is not valid; it must be at least 1"
    assert flag_of("max_gap") == "--max-gap"
    assert main(["eval", "video", "--interval", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "lowlatseg: error: --interval 0 is not valid; it must be at least 1"


def test_the_design_map_lists_every_module() -> None:
    """docs/design.md maps every module of the package (by file name, in its package's table)."""
    design = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in _modules() if p.name != "__init__.py" and p.name not in design]
    assert not missing, f"add these to docs/design.md: {missing}"

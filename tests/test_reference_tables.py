"""The committed reference tables (tests/reference/, see its README): small, made by the versions the
README names, and every case still read by the test it names."""
import ast
from pathlib import Path

import pytest

from reference import HERE, expand, tables

ROOT = HERE.parent.parent
SOURCES = {"mmcv_lr": {"mmcv": "1.7.2", "mmtrack": "0.14.0"}, "mmselfsup_ema": {"mmcv": "1.7.2", "mmselfsup": "0.11.0"},
           "mmagic_interval": {"mmengine": "0.10.7", "mmagic": "1.2.0"},
           "mmagic_plateau": {"mmengine": "0.10.7", "mmagic": "1.2.0"}}


def test_every_source_has_its_script_and_no_other_table_exists():
    assert sorted(p.parent.name for p in HERE.glob("*/tables.json")) == sorted(SOURCES)
    assert all((HERE / s / "make_tables.py").is_file() for s in SOURCES)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_table_is_small_and_made_by_the_stated_versions(source):
    assert (HERE / source / "tables.json").stat().st_size < 200_000
    meta = tables(source)["meta"]
    for package, version in SOURCES[source].items():
        found = meta[package]["version"] if isinstance(meta[package], dict) else meta[package]
        assert found == version, (source, package)
    assert meta["script"] == f"tests/reference/{source}/make_tables.py"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_case_names_an_existing_test_that_reads_it(source):
    for name, case in tables(source)["cases"].items():
        assert len(expand(case["lr"] if "lr" in case else case["momentum"])) == case["n_iters"], name
        for ref in case.get("tests", [case.get("test")]):
            path, func = ref.split("::")
            text = (ROOT / path).read_text(encoding="utf-8")
            functions = {n.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)}
            assert func in functions, (source, name, ref)
            assert source in text, (source, name, ref)


def test_expand_run_lengths():
    assert expand([[2, [0.1, 0.2]], [1, 3], [3, 0.5]]) == [(0.1, 0.2), (0.1, 0.2), 3, 0.5, 0.5, 0.5]


# the optional extra trainkit[openmmlab]: `python -m trainkit.port` reads configs with mmengine's Config
OPTIONAL = {"trainkit/cli/port.py"}


def test_no_reference_package_is_imported_by_trainkit():
    for path in sorted((ROOT / "trainkit").rglob("*.py")):
        if str(path.relative_to(ROOT)) in OPTIONAL:
            continue
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level]
        bad = [m for m in names if m.split(".")[0] in ("mmcv", "mmengine", "mmtrack", "mmselfsup", "mmagic", "mmdet")]
        assert not bad, (path, bad)

"""Every docstring example in ``src/spikegen`` runs here.

Each module under :mod:`spikegen` (``pkgutil.walk_packages``) is imported and its examples are
run with :class:`doctest.DocTestRunner` (``ELLIPSIS | NORMALIZE_WHITESPACE``) in a temporary
working directory, so examples that write files leave nothing behind. An example that cannot
run here (it needs the shared data, weights that are not shipped, or CUDA) carries
``# doctest: +SKIP`` on its line; a whole module is left out only through :data:`SKIP` below,
each entry with its reason, and an entry is an error once the module's examples pass again.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import time

import pytest

import spikegen

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules that are never imported here: importing them does something else than define names.
NOT_IMPORTED = {
    "spikegen.__main__": "runs the command line on import (``python -m spikegen``); it has no examples",
}

# Modules whose examples fail today and that this change may not edit: module -> reason.
# Remove an entry as soon as the module's examples pass (the test below says so).
SKIP: dict[str, str] = {}


def all_modules() -> list[str]:
    """``spikegen`` and every module and package below it, sorted."""
    names = {"spikegen"}
    for info in pkgutil.walk_packages(spikegen.__path__, "spikegen."):
        names.add(info.name)
    return sorted(names)


def run_module(name: str) -> tuple[int, int, str]:
    """``(examples, failures, report)`` of the docstring examples of module ``name``."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out = io.StringIO()
    for test in sorted(finder.find(module, name), key=lambda t: t.name):
        runner.run(test, out=out.write, clear_globs=True)
    return runner.tries, runner.failures, out.getvalue()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_module_is_importable_and_listed():
    mods = all_modules()
    assert len(mods) > 50, mods  # the walk found the package, not an empty path
    for listed in (*NOT_IMPORTED, *SKIP):
        assert listed in mods, f"{listed}: in the doctest skip lists but not a spikegen module"


def test_every_doctest_passes(in_tmp, capsys):
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    ran: dict[str, int] = {}
    for name in all_modules():
        if name in NOT_IMPORTED or name in SKIP:
            continue
        examples, failures, report = run_module(name)
        if examples:
            ran[name] = examples
        if failures:
            failed[name] = f"{failures} of {examples} examples failed\n{report}"
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\ndoctests: {sum(ran.values())} examples in {len(ran)} modules, {seconds:.1f} s")
    assert len(ran) >= 30, f"only {len(ran)} modules have examples that ran: {sorted(ran)}"
    if failed:
        detail = "\n\n".join(f"=== {m}: {r}" for m, r in failed.items())
        pytest.fail(f"doctests fail in {len(failed)} modules: {', '.join(failed)}\n\n{detail}", pytrace=False)


@pytest.mark.parametrize("name", sorted(SKIP))
def test_skipped_modules_still_fail(name, in_tmp):
    """A module in :data:`SKIP` whose examples pass again must leave the list."""
    examples, failures, _ = run_module(name)
    assert failures, f"{name}: its {examples} examples pass now; remove it from SKIP in {__file__}"

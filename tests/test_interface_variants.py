"""Meta-test: differently-shaped correct answers (tests/interface_variants/<variant>/<challenge>/) pass too.

Each variant is a correct solution written with another calling convention than the reference (a class
instead of functions, other names, a dict cache, additive masks...). That they pass every test is the proof
that the drivers adapt to real answers instead of to our reference's interface.
"""

from __future__ import annotations

import pytest

from tests.grading_run import REPO, grade

VARIANTS = REPO / "tests" / "interface_variants"
NAMES = sorted(p.name for p in VARIANTS.iterdir() if p.is_dir()) if VARIANTS.is_dir() else []


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("variants")
    challenges = sorted({c.name for v in NAMES for c in (VARIANTS / v).iterdir() if c.is_dir()})
    return grade([VARIANTS], tmp, suites=challenges)


@pytest.mark.parametrize("variant", NAMES)
def test_variant_passes_everything(variant: str, run) -> None:  # type: ignore[no-untyped-def]
    results = run.outcomes(variant)
    assert results, f"variant {variant} was not graded:\n{run.stdout[-3000:]}"
    bad = {t: r for t, r in results.items() if r[0] == "failed"}
    assert not bad, f"correct variant {variant} failed: " + "; ".join(f"{t} [{c}] {m}" for t, (o, c, m) in bad.items())


def test_variants_exist() -> None:
    assert NAMES, f"no interface variants under {VARIANTS}"

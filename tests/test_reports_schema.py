"""Every report these tests write validates against the shipped JSON Schema (report.schema.json).

``validate`` is called by the other report tests on each JSON they write; while the schema file is not in the
package yet (it comes with the schema-2 data model), validation is skipped here with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pytest_llmchallenges

SCHEMA_FILE = Path(pytest_llmchallenges.__file__).with_name("report.schema.json")
FIXTURES = Path(__file__).parent / "report_fixtures"
NO_SCHEMA = "pytest_llmchallenges/report.schema.json is not in the package yet (it lands with the schema-2 model)"


def _validator() -> Any | None:
    if not SCHEMA_FILE.exists():
        return None
    try:
        import jsonschema
    except ImportError:
        return None
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate(doc: dict[str, Any]) -> None:
    """Raise on a report that breaks the schema; nothing when the schema or jsonschema is absent."""
    validator = _validator()
    if validator is None:
        return
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("name", ["mixed", "cpu", "gpu"])
def test_fixtures_are_schema_2_documents(name: str) -> None:
    if not SCHEMA_FILE.exists():
        pytest.skip(NO_SCHEMA)
    pytest.importorskip("jsonschema", reason="jsonschema (a dev dependency) validates the reports")
    validate(json.loads((FIXTURES / f"{name}.json").read_text()))

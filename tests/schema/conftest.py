"""pytest setup local to tests/schema (Istio CRD schema tier: `make test-schema`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # `import istio_schema` from the tests of this directory


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "istio_schema: validates objects against the pinned Istio CRD schemas (needs `go`)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().parent == HERE:
            item.add_marker(pytest.mark.istio_schema)


@pytest.fixture(scope="session")
def istio():
    """The istio_schema module, with the CRDs loaded (fails, never skips, if they are missing)."""
    import istio_schema

    try:
        istio_schema.known_kinds()
    except istio_schema.IstioSchemaUnavailable as exc:
        pytest.fail(f"Istio CRD schemas unavailable: {exc}", pytrace=False)
    return istio_schema

"""The catalog fixtures (a Hello catalog built by `sandhaven catalog build`) for the
market page's tests."""

from tests.catalog.conftest import built_catalog, catalog_dir  # noqa: F401

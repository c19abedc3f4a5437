"""The app catalog: a static directory of packages and an index of them
(docs/reference/catalog-format.md)."""

"""Grain backups: one zip per grain that moves between servers
(docs/reference/backup-format.md)."""

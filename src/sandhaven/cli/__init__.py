"""The ``sandhaven`` command line: one module per group of subcommands."""

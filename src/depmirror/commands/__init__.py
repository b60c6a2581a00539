"""Subcommands of the depmirror CLI, one module per group."""

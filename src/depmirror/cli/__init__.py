"""The `depmirror` command: `main` is the entry point, one module per group of subcommands."""

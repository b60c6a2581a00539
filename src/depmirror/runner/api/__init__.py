"""The runner's operator API under /api/v1/ (docs/runner.md, "API"): dependencies, run-time policy
(overrides), switchovers and history statistics, behind tokens with scopes. `routes.mount` adds it to the
runner's aiohttp application; this package file imports nothing, so the config can read `scopes` alone."""

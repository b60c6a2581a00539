"""Fixtures every test directory may use. The lab fixtures start and always stop the lab (tests/lab/)."""

# tests.postgres_server: a throwaway PostgreSQL cluster (`postgres_server`) and a fresh database per test.
pytest_plugins = ["tests.lab.lab_fixtures", "tests.postgres_server"]

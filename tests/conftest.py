"""Fixtures every test directory may use. The lab fixtures start and always stop the lab (tests/lab/)."""

pytest_plugins = ["tests.lab.lab_fixtures"]

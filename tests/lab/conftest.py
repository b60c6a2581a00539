"""The lab fixtures come from tests/lab/lab_fixtures.py, registered once in tests/conftest.py."""

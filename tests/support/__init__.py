"""Helpers shared by test modules that are not fixtures (fixtures live in conftest.py files
and in the plugins listed in ``tests/conftest.py``'s ``pytest_plugins``). Test modules import
from here, never from another test module or a conftest."""

# A package, so that its conftest imports as `flows.conftest` and never replaces the shared
# tests/conftest.py that other test modules import by the name `conftest`.

"""Inputs of a build: the config, the lock file, resolvers (PyPI, Debian, CPython), fetching."""

"""Builds: derivations, the sandbox, builtins and the realizer that runs them in order."""

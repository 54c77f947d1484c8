"""seal command-line client."""

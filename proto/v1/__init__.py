"""Generated gRPC modules for seal.v1 (regenerate: python proto/generate.py)."""

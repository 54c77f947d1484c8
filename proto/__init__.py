"""seal's gRPC API: ``.proto`` sources and the generated modules beside them."""

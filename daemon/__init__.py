"""seal's daemon: owns the store, serves gRPC, plans and realizes builds.

Run it in the foreground with ``python -m seal.daemon --store DIR`` (or
``seal daemon run``); tests and benchmarks embed one::

    from seal.daemon.server import create_server
    with create_server(store_dir) as daemon:
        channel = grpc.insecure_channel(daemon.address)

This package's ``__init__`` imports nothing, so a client that only starts a
daemon process stays fast (DESIGN.md section 4).
"""

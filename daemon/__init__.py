"""seal's daemon: owns the store, serves gRPC, plans and realizes builds.

Empty for now: the store library (``seal.store``) is used in-process by the
client until the daemon is built (DESIGN.md section 4).
"""

"""rpcviz's benchmark harness: ``python -m bench`` measures our transport against grpclib and grpcio.

Not a test: CI runs only ``python -m bench --quick`` (tests/bench) to keep it working.
"""

"""Headless sub-commands of ``rpcviz``: each module has ``add_parser`` and ``run``."""

"""Fixtures the app tests share with the CLI's: ``clusters`` runs ``rpcviz cluster up`` processes."""

from tests.cli.test_cluster_up import clusters

__all__ = ["clusters"]

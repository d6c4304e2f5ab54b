"""The production backend: demos as vClusters on a real host cluster, driven by Helm and the
Kubernetes API. See docs/vcluster.md for configuration and demos/backends/vcluster/backend.py for
the lifecycle of one cluster."""

from demos.backends.vcluster.backend import VClusterBackend
from demos.backends.vcluster.values import validate_overrides

__all__ = ["VClusterBackend", "validate_overrides"]

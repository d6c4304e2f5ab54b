"""The production backend: demos as vClusters on a real host cluster, driven by Helm and the
Kubernetes API. See docs/vcluster.md for configuration and demos/backends/vcluster/backend.py for
the lifecycle of one cluster.

Nothing is imported here: the settings module reads `config.py`, and loading the backend (and
the Kubernetes client with it) in every process, simulated ones included, would slow each start.
"""

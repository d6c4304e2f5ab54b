"""Test support that reproduces upstream behaviour from upstream artifacts: the vendored vCluster
chart rendered by the real `helm`, and Kubernetes' own RBAC rules."""

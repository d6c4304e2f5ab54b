"""Benchmarks (`make bench`) and fault drills (`make drills`) for the demo portal.

Both start the portal as it runs in production (gunicorn, real RQ worker processes, one cron)
against PostgreSQL and Redis on this machine, drive it, and write their figures to
`bench/results/` as a list of `{"name", "value", "unit", "target", "met"}` so runs can be compared
over time. See docs/performance.md for the latest figures and how to read them.
"""

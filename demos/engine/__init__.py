"""The lifecycle engine: every state change, admission, specs, and the background work that drives
demos toward their wanted state (dispatch, jobs, operations, the reconcile sweep, warm pools)."""

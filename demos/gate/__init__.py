"""The gate in front of every demo's live app (docs/gate.md).

The ingress controller asks the portal about each request to a demo host (`views.check`); a
request passes with an access cookie bound to that demo, which only a prospect's link or a team
member's session can obtain, through a short-lived single-use ticket (`passes`). What the gate
knows about demos and links sits in Redis (`state`), written on every change, so a check costs no
database query and a revocation takes effect at the next request. Allowed requests are counted
per minute (`activity`), which feeds engagement figures and puts idle demos to sleep.
"""

"""gunicorn's settings for the web process: `gunicorn --config python:portal.gunicorn_conf`.

docker-entrypoint.sh passes it; the command line there sets the sizing (bind, workers,
threads, timeouts), this file what must be the same wherever the portal runs:

- Forwarded headers (X-Forwarded-Proto, -For) are believed only from the proxies in
  TRUSTED_PROXY_NETWORKS, the list the portal itself uses for client addresses; read through
  the Django settings module, so both always agree.
- Share-link tokens never reach gunicorn's logs: the access log and the error log (which quotes
  malformed request lines) pass every record through the same redaction as Django's logging.
- The portal is loaded and warmed once, in the master (`preload_app`, `when_ready`), so every
  worker it forks starts warm (portal/warm.py).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from gunicorn.glogging import Logger

from portal.redaction import RedactShareTokens

_settings = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "portal.settings"))

forwarded_allow_ips = ",".join(str(network) for network in _settings.TRUSTED_PROXY_NETWORKS)
accesslog = "-"

_REDACT = RedactShareTokens()


class RedactingLogger(Logger):
    """gunicorn's logger with share tokens redacted from every access and error record."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # One shared filter instance: a configuration reload runs setup again, and addFilter
        # ignores a filter it already has.
        self.access_log.addFilter(_REDACT)
        self.error_log.addFilter(_REDACT)


logger_class = RedactingLogger

# The portal is loaded once, in the master, and warmed there (portal/warm.py): every worker, also
# each one that --max-requests starts anew under load, begins with its views imported and its
# templates compiled, and shares those pages of memory with the others.
preload_app = True


def when_ready(server: Any) -> None:
    if not server.cfg.preload_app:  # turned off: the master has no portal to warm
        return
    from portal.warm import warm

    server.log.info("Warmed: views imported, %d templates compiled", warm())

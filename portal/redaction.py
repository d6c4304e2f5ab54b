"""Share-link tokens (and the other secrets that travel in URLs) out of logs.

A prospect's link is `/p/<token>/...`, and whoever reads the token can open the demo. Logs are
read by more people, kept longer and shipped further than the database, which stores only the
token's hash; so every log line the portal writes has the token replaced by a marker. Used by
Django's logging (`RedactShareTokens`, installed in settings.LOGGING) and by gunicorn's access
log (portal/gunicorn_conf.py). No Django imports: gunicorn loads this before Django is set up.
"""

from __future__ import annotations

import logging
import re

# Where portal/urls.py mounts the prospect pages.
PROSPECT_PREFIX = "p/"
REDACTED = "[redacted]"

# Each: what stays, then the secret. In a path, a full URL or a request line; whatever the secret
# is (real, mistyped, percent-encoded), it never reaches a log.
_SECRETS = (
    # The path segment after /p/: a share link's token.
    re.compile(rf"(/{re.escape(PROSPECT_PREFIX)})[^/?#\s\"']+"),
    # A password reset link's token (/password/reset/<user>/<token>/): Django's confirm view
    # receives it once, before it moves it into the session.
    re.compile(r"(/password/reset/[^/?#\s\"']+/)[^/?#\s\"']+"),
    # The gate's one-minute, single-use ticket to a demo host (/.portal-gate/enter?ticket=...).
    re.compile(r"([?&]ticket=)[^&#\s\"']+"),
)


def redact_share_tokens(text: str) -> str:
    for secret in _SECRETS:
        text = secret.sub(rf"\g<1>{REDACTED}", text)
    return text


class RedactShareTokens(logging.Filter):
    """Rewrites a record's message with share tokens redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_share_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True

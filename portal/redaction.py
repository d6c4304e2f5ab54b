"""Share-link tokens out of logs.

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

# The path segment after /p/, in a path, a full URL or a request line; whatever it is (a real
# token, a mistyped one, a percent-encoded one), it never reaches a log.
_SHARE_TOKEN = re.compile(rf"(/{re.escape(PROSPECT_PREFIX)})[^/?#\s\"']+")


def redact_share_tokens(text: str) -> str:
    return _SHARE_TOKEN.sub(rf"\g<1>{REDACTED}", text)


class RedactShareTokens(logging.Filter):
    """Rewrites a record's message with share tokens redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_share_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True

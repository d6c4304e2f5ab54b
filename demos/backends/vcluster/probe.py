"""The last step of "ready": does the demo's live link answer HTTP?"""

from __future__ import annotations

import warnings

import urllib3

# An app that asks for a login is up; anything else below 400 is an answer too.
UP_STATUSES = frozenset({401, 403})


def probe_url(url: str, timeout: float, verify_tls: bool = True) -> tuple[bool, str]:
    """(answers?, what happened) for one GET of `url`, without following redirects."""
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE")
    try:
        with warnings.catch_warnings():
            # Operators turn verification off on purpose (self-signed demo ingress).
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = pool.request(
                "GET",
                url,
                timeout=urllib3.Timeout(total=timeout),
                redirect=False,
                retries=False,
                preload_content=False,
            )
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        return False, f"no answer ({type(reason).__name__})"
    finally:
        pool.clear()
    if response.status < 400 or response.status in UP_STATUSES:
        return True, f"HTTP {response.status}"
    return False, f"HTTP {response.status}"

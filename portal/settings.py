"""Portal settings, read from environment variables.

Every setting has an embedded default that works on a laptop (`make run`); production sets the
variables listed in the README. A bad value stops startup with a message naming the variable.
"""

import base64
import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true/false, yes/no or 1/0.")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envints(name: str, default: str) -> list[int]:
    items = envlist(name, default)
    if not all(item.isdigit() and int(item) > 0 for item in items):
        raise ImproperlyConfigured(f"{name}={','.join(items)!r} must be positive whole numbers.")
    return [int(item) for item in items]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def envnetworks(name: str, default: str = "") -> list[Network]:
    """Comma-separated addresses or CIDR networks, e.g. `10.0.0.0/8,fd00::/8`."""
    networks: list[Network] = []
    for item in envlist(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or network such as 10.0.0.0/8."
            ) from None
    return networks


def envsecret(name: str, default: str = "") -> str:
    """Read a secret from NAME, or from the file named by NAME_FILE (Kubernetes Secret mounts)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


def envkeys(name: str) -> list[str]:
    """Fernet keys from NAME (comma-separated) or from the file named by NAME_FILE (one a line)."""
    keys = envsecret(name).replace(",", " ").split()
    for number, key in enumerate(keys, 1):
        try:
            valid = len(base64.urlsafe_b64decode(key)) == 32
        except ValueError:
            valid = False
        if not valid:
            # The key itself is never repeated in a message: start-up errors end up in logs.
            raise ImproperlyConfigured(
                f"{name}: key {number} is not a Fernet key (32 bytes, URL-safe base64). Make one "
                "with: openssl rand -base64 32 | tr '+/' '-_'"
            )
    return keys


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY (or SECRET_KEY_FILE) to a "
            "long random string, or set DEBUG=true for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

# Keys that seal prospects' kubeconfigs in the database (portal/sealing.py): the first seals,
# every one unseals, so a rotation puts the new key first and keeps the old one until
# `manage.py reseal` has run. Empty: one key derived from SECRET_KEY (`check --deploy` warns).
SEALING_KEYS = envkeys("SEALING_KEYS")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_rq",
    "axes",
    "portal",
    "demos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything resolves a URL: demo hosts have URLs of their own.
    "demos.gate.hosts.DemoHostMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    }
]

# Each thread keeps its connection for ten minutes. A new one starts a PostgreSQL server process
# with cold caches, and the request that opens it takes 10 to 17 ms longer (docs/performance.md):
# at a minute, each of a web process's threads paid that once a minute. The health check (one
# round trip as a request first uses the database) replaces a connection the server dropped.
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # WAL and a busy timeout let the web process and the workers share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one user name from
# one client address, that pair is refused for LOGIN_COOLOFF_MINUTES, even with the right
# password. Counting the pair, not the name alone, means nobody can lock a colleague out from
# elsewhere. Attempts are kept in the database, so throttling works while Redis is down; admins
# unlock in the admin (Access attempts) or with `manage.py axes_reset_username NAME`.
# After it, Django's model backend with the signed-in user cached (portal/auth_backend.py);
# sessions that name Django's own backend are read as this one's (portal/sessions.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "portal.auth_backend.CachedModelBackend",
]
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_COOLOFF_MINUTES = envint("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The cool-off runs from the lockout; more attempts meanwhile do not extend it, so the page's
# "try again in N minutes" stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "portal.lockout.locked_out"
AXES_CLIENT_IP_CALLABLE = "portal.clients.client_address"
# A password reset link works for an hour: long enough to find the email, short enough that an
# old email found later in someone's inbox opens nothing (demos/sales/password.py).
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_TIMEOUT", 60 * 60, minimum=60)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "demos:catalog"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Email: console in development, SMTP in production (Django's MAILERS configuration).
EMAIL_BACKEND_PATH = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH}}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": envstr("EMAIL_HOST", "localhost"),
        "port": envint("EMAIL_PORT", 25),
        "username": envstr("EMAIL_HOST_USER"),
        "password": envsecret("EMAIL_HOST_PASSWORD"),
        "use_tls": envbool("EMAIL_USE_TLS", False),
    }
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Demo portal <demos@localhost>")

# Security. Strict by default; DEBUG relaxes only what a plain-HTTP laptop needs.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Browser preload lists are a one-way commitment for a whole domain; an operator opts in
        # with SECURE_HSTS_PRELOAD=true once they mean it, so its absence is not a warning.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# No inline scripts or styles anywhere: every script and stylesheet is a file under static/.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Background work: django-rq on Redis. Jobs are held until the surrounding transaction commits,
# so a worker never looks for a row that is not there yet.
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
# In priority order: a worker takes from the first queue that has a job (RQ tries them in turn),
# so the sweep, expiry and heartbeat on `maintenance` run however many `demos` steps wait.
RQ_QUEUE_NAMES = ("maintenance", "demos")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 1800} for name in RQ_QUEUE_NAMES}
RQ = {"COMMIT_MODE": "on_db_commit"}
# The job dashboard can empty queues and delete jobs, so it is for superusers only and mounted
# once, at /admin/rq/ (portal/urls.py checks). django-rq's admin entry would mount it a second
# time for every staff member.
RQ_SHOW_ADMIN_LINK = False

# Shared cache (rate limits, one-off notices) in the same Redis, under its own prefix. Its
# errors reach the callers, which decide what a missing count means.
#
# `sessions` holds copies of database rows only (sessions and signed-in users), so a Redis error
# there is a miss, never an error page: reads go to the database, writes are skipped, and
# quarter-second socket timeouts plus a pause after each failure keep a dead Redis from slowing
# pages down (portal/tolerant_cache.py). Entries live a minute at most, which bounds how long
# anything it could not delete during an outage can outlive a sign-out.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal-cache",
    },
    # Rendered fragments (catalog cards, rows of My demos), kept in each process's memory: no
    # Redis round trip, and nothing lost when Redis is away. Keys carry everything a fragment
    # shows (a template's version and change time, a demo's columns), so nothing is served stale.
    # About 2 KB each: 5,000 are 10 MB a process at most.
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "portal-fragments",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
    # The same fragments shared in Redis, where a process finds what it has not rendered itself:
    # a web worker just started (gunicorn's --max-requests replaces them under load) takes the
    # rows its predecessors rendered instead of rendering a whole page of them. A miss while
    # Redis is away, like the sessions' cache below.
    "shared_fragments": {
        "BACKEND": "portal.tolerant_cache.TolerantRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal-fragments",
        "TIMEOUT": 600,
        "LONGEST_ENTRY": 600,  # keyed by all they show: never stale, kept as long as locally
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
    },
    "sessions": {
        "BACKEND": "portal.tolerant_cache.TolerantRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal-sessions",
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
    },
}

# Sessions are read from Redis and kept in the database (Django's `cached_db`): a poll or page
# of a signed-in person costs no query for the session, nor for the user (portal/auth_backend.py),
# while every page still works with Redis down, from the database alone. Signing out and
# password changes take effect at once either way: the database is the truth, and cached copies
# are dropped with it.
SESSION_ENGINE = "portal.sessions"
SESSION_CACHE_ALIAS = "sessions"

# Prospect links: failed lookups allowed per client network and window before it is refused.
PROSPECT_FAILURE_LIMIT = envint("PROSPECT_FAILURE_LIMIT", 20, minimum=1)
PROSPECT_FAILURE_WINDOW_SECONDS = envint("PROSPECT_FAILURE_WINDOW_SECONDS", 900, minimum=1)
# The proxies in front of the portal (the ingress controller's pod network): only a request whose
# direct peer is in one of these networks has its X-Forwarded-For read, for rate limits, login
# throttling and the visit log. gunicorn trusts forwarded headers from the same networks
# (portal/gunicorn_conf.py). Empty: the direct peer is the client.
if "TRUST_X_FORWARDED_FOR" in os.environ:
    raise ImproperlyConfigured(
        "TRUST_X_FORWARDED_FOR is replaced by TRUSTED_PROXY_NETWORKS: list the networks of the "
        "proxies in front of the portal (e.g. the ingress controller's pod network, "
        "10.244.0.0/16), and remove TRUST_X_FORWARDED_FOR."
    )
TRUSTED_PROXY_NETWORKS = envnetworks("TRUSTED_PROXY_NETWORKS")
RQ_JOB_MONITORING_INTERVAL = envint("RQ_JOB_MONITORING_INTERVAL", 10, minimum=1)

# Demo lifecycle.
DEMO_BACKEND = envstr("DEMO_BACKEND", "simulated")
# Demo host names are <cluster-name>.<DEMO_BASE_DOMAIN> (the ${DEMO_HOST} variable).
DEMO_BASE_DOMAIN = envstr("DEMO_BASE_DOMAIN", "demos.localhost")
# Live links go through the portal's gate (demos/gate, docs/gate.md): the ingress controller asks
# the portal about every request to a demo host, and only a prospect's link or a signed-in team
# member gets in. DEMO_GATE_CONTROLLER says who asks: `portal` (no ingress in front: the portal
# serves the simulated app on demo hosts and checks each request itself), `ingress-nginx`,
# `traefik` or `envoy-gateway` (the vCluster backend creates that controller's routing for each
# demo host).
DEMO_GATE = envbool("DEMO_GATE", True)
DEMO_GATE_CONTROLLER = envstr("DEMO_GATE_CONTROLLER", "portal")
GATE_CONTROLLERS = ("portal", "ingress-nginx", "traefik", "envoy-gateway")
if DEMO_GATE_CONTROLLER not in GATE_CONTROLLERS:
    raise ImproperlyConfigured(
        f"DEMO_GATE_CONTROLLER={DEMO_GATE_CONTROLLER!r}: choose one of "
        f"{', '.join(GATE_CONTROLLERS)}."
    )
# The address the ingress controller calls for each request (inside the host cluster), and the
# portal's Service that demo hosts' /.portal-gate/ paths are routed to.
DEMO_GATE_AUTH_URL = envstr(
    "DEMO_GATE_AUTH_URL", "http://portal-web.demo-portal.svc.cluster.local/gate/check/"
)
DEMO_GATE_PORTAL_SERVICE = envstr(
    "DEMO_GATE_PORTAL_SERVICE", "portal-web.demo-portal.svc.cluster.local"
)
DEMO_GATE_PORTAL_PORT = envint("DEMO_GATE_PORTAL_PORT", 80, minimum=1)
# The access cookie: host-only, HttpOnly, Secure (`__Host-` prefix) unless turned off for a
# plain-HTTP demo domain that is not localhost. Member cookies last at most this long.
DEMO_GATE_COOKIE_SECURE = envbool("DEMO_GATE_COOKIE_SECURE", True)
DEMO_GATE_COOKIE_SECONDS = envint("DEMO_GATE_COOKIE_SECONDS", 12 * 3600, minimum=60)
DEMO_GATE_TICKET_SECONDS = envint("DEMO_GATE_TICKET_SECONDS", 60, minimum=5)
# How long each web process holds a decision of the gate, and sends its counts of demo use at
# most this often: a revocation takes effect within this time (plus the next request).
DEMO_GATE_CACHE_SECONDS = envfloat("DEMO_GATE_CACHE_SECONDS", 1.0)
# How long the gate trusts the state it keeps in Redis before it reads the database again (every
# change writes it at once; this only bounds a change whose Redis write failed).
DEMO_GATE_STATE_SECONDS = envint("DEMO_GATE_STATE_SECONDS", 600, minimum=5)
# Requests from these user agents (case-insensitive substrings) are let through or not like any
# other, but never count as someone using the demo: health checks and uptime monitors.
DEMO_GATE_IGNORED_USER_AGENTS = envlist(
    "DEMO_GATE_IGNORED_USER_AGENTS",
    "kube-probe,ELB-HealthChecker,GoogleHC,Blackbox Exporter,UptimeRobot,Pingdom,StatusCake",
)
# A prospect counts as "in the demo now" for this long after their last request; a gap longer
# than DEMO_GATE_SESSION_GAP_MINUTES starts a new session (a return visit).
DEMO_GATE_PRESENT_SECONDS = envint("DEMO_GATE_PRESENT_SECONDS", 120, minimum=10)
DEMO_GATE_SESSION_GAP_MINUTES = envint("DEMO_GATE_SESSION_GAP_MINUTES", 30, minimum=1)
# The simulated app's origin on demo hosts: SITE_URL's scheme and port with the demo's host.
SIMULATED_APP_ORIGIN = envstr("SIMULATED_APP_ORIGIN", "")
if DEMO_GATE:
    # Demo hosts reach the portal for /.portal-gate/ (tickets) and, with the simulated backend,
    # for the sample app itself.
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, f".{DEMO_BASE_DOMAIN}"] if ALLOWED_HOSTS else ALLOWED_HOSTS
    # Signing in from the gate's page goes on into the demo: the login form's redirects end on
    # a demo host, and browsers hold a form's redirects to form-action.
    SECURE_CSP["form-action"] = [CSP.SELF, f"*.{DEMO_BASE_DOMAIN}:*"]

# Where template charts may come from: URL prefixes such as `oci://registry.example.com/charts/`.
# Empty: any public https:// or oci:// repository, never a loopback, private, link-local or
# cluster-internal one (the worker fetches charts from inside the host cluster).
DEMO_CHART_REPOSITORIES = envlist("DEMO_CHART_REPOSITORIES")
if not all(prefix.startswith(("https://", "oci://")) for prefix in DEMO_CHART_REPOSITORIES):
    raise ImproperlyConfigured(
        f"DEMO_CHART_REPOSITORIES={','.join(DEMO_CHART_REPOSITORIES)!r}: each prefix must start "
        "with https:// or oci://."
    )
DEMO_MAX_ACTIVE_PER_USER = envint("DEMO_MAX_ACTIVE_PER_USER", 3, minimum=1)
DEMO_MAX_ACTIVE_TOTAL = envint("DEMO_MAX_ACTIVE_TOTAL", 50, minimum=1)
DEMO_EXPIRY_WARNINGS = [
    timedelta(minutes=m) for m in envints("DEMO_EXPIRY_WARNING_MINUTES", "60,10")
]
DEMO_RECONCILE_SECONDS = envint("DEMO_RECONCILE_SECONDS", 30, minimum=5)
DEMO_JOB_RETRIES = envint("DEMO_JOB_RETRIES", 3)
# Failed starts in a row that take a template out of the catalog until an admin puts it back.
DEMO_TEMPLATE_FLAG_AFTER = envint("DEMO_TEMPLATE_FLAG_AFTER", 3, minimum=1)
# Seconds between two looks at a cluster that is on its way (starting, pausing, deleting...).
# Each look is one short job; nothing waits in between.
DEMO_OBSERVE_INTERVAL = envfloat("DEMO_OBSERVE_INTERVAL", 1.0)
# Fault drills only (demos/engine/faults.py): a file naming the code point to kill a worker at.
DEMO_FAULT_FILE = envstr("DEMO_FAULT_FILE")

# Simulated backend: total start-up of about ten seconds by default, failure injection off.
DEMO_SIM_STEP_SECONDS = envfloat("DEMO_SIM_STEP_SECONDS", 2.5)
DEMO_SIM_FAIL_STEP = envstr("DEMO_SIM_FAIL_STEP")
DEMO_SIM_FAIL_TEMPLATES = envlist("DEMO_SIM_FAIL_TEMPLATES")
DEMO_SIM_FAIL_RATE = envfloat("DEMO_SIM_FAIL_RATE", 0.0)
DEMO_SIM_ERROR_RATE = envfloat("DEMO_SIM_ERROR_RATE", 0.0)

# ---- vCluster backend (DEMO_BACKEND=vcluster). Each VCLUSTER_* setting is declared once, with
# its type and default, by a field of VClusterSettings (demos/backends/vcluster/config.py) and
# explained in docs/vcluster.md. Here each becomes the Django setting of the same name, read from
# its environment variable (e.g. VCLUSTER_HELM_TIMEOUT, VCLUSTER_SNAPSHOT_URL).
from demos.backends.vcluster.config import Variable, VClusterSettings  # noqa: E402

# The pinned helm from scripts/get-tools when present, else helm on the PATH.
_BUNDLED_HELM = BASE_DIR / ".tools" / "bin" / "helm"


def _vcluster_setting(variable: Variable) -> bool | int | str | tuple[str, ...]:
    name, default, minimum = variable
    if name == "VCLUSTER_HELM_BIN" and _BUNDLED_HELM.is_file():
        default = str(_BUNDLED_HELM)
    if isinstance(default, bool):
        return envbool(name, default)
    if isinstance(default, int):
        return envint(name, default, minimum=minimum)
    if isinstance(default, tuple):
        return tuple(envlist(name, ",".join(default)))
    return envstr(name, default)


globals().update({v.name: _vcluster_setting(v) for v in VClusterSettings.variables()})
# ---- end of vCluster backend

# Share-link tokens are redacted from every record the console handler writes (Django logs the
# path of 404 and 429 answers); Django's own loggers and runserver's request log write through it
# too.
LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_share_tokens": {"()": "portal.redaction.RedactShareTokens"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_share_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Django's defaults give these two loggers handlers of their own, which would write around
    # the filter; configured here without handlers, their records go up to the root's.
    "loggers": {
        "django": {"level": LOG_LEVEL},
        "django.server": {"level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # Failed log-ins and lockouts are warnings; every successful log-in is not news.
        "axes": {"level": "WARNING"},
    },
}

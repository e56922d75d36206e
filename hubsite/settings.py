"""hubsite settings: one module, every deployment-specific value from the environment.

HUBSITE_ENV selects the mode: ``development`` (default; DEBUG on, a local database allowed,
console e-mail) or ``production`` (secret key, hosts and HTTPS required, passes
``manage.py check --deploy`` cleanly).
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from hubsite import ultralytics_offline
from hubsite.env import env_bool, env_choice, env_int, env_list, env_required, env_str

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("HUBSITE_DATA_DIR", str(BASE_DIR / ".data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/hubsite"

HUBSITE_ENV = env_choice("HUBSITE_ENV", ("development", "production"), "development")
PRODUCTION = HUBSITE_ENV == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        env_required("ALLOWED_HOSTS")
else:
    SECRET_KEY = env_str("SECRET_KEY", "development-only-key-never-use-in-production")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "hubsite",
    "training",
    "billing",
    "api",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_dramatiq",
    "django_ratelimit",
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "hubsite.urls"
WSGI_APPLICATION = "hubsite.wsgi.application"

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
                "billing.context_processors.account_balance",
                "billing.context_processors.plans",
            ],
        },
    },
]

# Database: PostgreSQL only (billing's per-epoch verbs are PostgreSQL functions).
# scripts/run and scripts/test start one and set DATABASE_URL when none is named;
# in development a bare ``manage.py`` uses the conventional local server.
DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL") if PRODUCTION else env_str("DATABASE_URL", LOCAL_DATABASE_URL),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "hubsite.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "training:home"
LOGOUT_REDIRECT_URL = "landing"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"

# Object storage: local files by default; S3 (or any S3-compatible server) when a
# bucket is named. Workers read datasets and write weights only through storage.
S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("S3_REGION", "us-east-1"),
            "location": env_str("S3_PREFIX"),
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            "addressing_style": "path",
            "signature_version": "s3v4",
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Datasets (training/datasets/): upload and zip-bomb limits, checked before and
# during extraction; pretrained weights only from this local folder, never downloaded.
DATASET_MAX_UPLOAD_BYTES = env_int("DATASET_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)
DATASET_MAX_UNCOMPRESSED_BYTES = env_int("DATASET_MAX_UNCOMPRESSED_BYTES", 20 * 1024**3, minimum=1)
DATASET_MAX_FILES = env_int("DATASET_MAX_FILES", 200_000, minimum=1)
DATASET_MAX_COMPRESSION_RATIO = env_int("DATASET_MAX_COMPRESSION_RATIO", 100, minimum=1)
# Caps on what a light worker reads into memory from a dataset (docs/datasets.md).
DATASET_MAX_CLASSES = env_int("DATASET_MAX_CLASSES", 10_000, minimum=1)
DATASET_MAX_YAML_BYTES = env_int("DATASET_MAX_YAML_BYTES", 1024**2, minimum=1)
DATASET_MAX_LABEL_BYTES = env_int("DATASET_MAX_LABEL_BYTES", 10 * 1024**2, minimum=1)
# The Predict tab (training/predictions/, docs/predict.md): the largest picture a user
# may try a model on, in bytes and in pixels; how long the picture and its drawn
# result stay in Redis unless saved; predictions per user per RATE_LIMIT_WINDOW_SECONDS.
PREDICT_MAX_UPLOAD_BYTES = env_int("PREDICT_MAX_UPLOAD_BYTES", 10 * 1024**2, minimum=1)
PREDICT_MAX_PIXELS = env_int("PREDICT_MAX_PIXELS", 40_000_000, minimum=100)
PREDICT_TTL_SECONDS = env_int("PREDICT_TTL_SECONDS", 15 * 60, minimum=1)
RATE_LIMIT_PREDICTIONS_PER_USER = env_int("RATE_LIMIT_PREDICTIONS_PER_USER", 120, minimum=1)
WEIGHTS_DIR = Path(env_str("WEIGHTS_DIR", str(DATA_DIR / "weights"))).resolve()
# Starting weights (training/weights/, docs/weights.md): the largest .pt a user may
# upload, and the release `manage.py install_weights` installs official weights from.
WEIGHTS_MAX_UPLOAD_BYTES = env_int("WEIGHTS_MAX_UPLOAD_BYTES", 1024**3, minimum=1)
WEIGHTS_RELEASE_URL = env_str(
    "WEIGHTS_RELEASE_URL", "https://api.github.com/repos/ultralytics/assets/releases/tags/v8.4.0"
)
# Remote training (training/remote/, docs/api.md): a remote session with no event for
# this long ends; a checkpoint upload URL is valid this long.
REMOTE_TRAINING_SILENCE_SECONDS = env_int("REMOTE_TRAINING_SILENCE_SECONDS", 3600, minimum=60)
REMOTE_UPLOAD_URL_SECONDS = env_int("REMOTE_UPLOAD_URL_SECONDS", 3600, minimum=60)

# Broker and jobs. Actors set queue, time limit and retries themselves (see
# hubsite/jobs.py); the middleware list is explicit because django-dramatiq's
# default names a Prometheus middleware that moved in Dramatiq 2.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
DRAMATIQ_NAMESPACE = env_str("DRAMATIQ_NAMESPACE", "hubsite")
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    "OPTIONS": {"url": REDIS_URL, "namespace": DRAMATIQ_NAMESPACE},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.ShutdownNotifications",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "training.engine.presence.WorkerPresence",
        "hubsite.jobs.PeriodicJobs",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# Rate limits on log in, sign up and password reset (hubsite/rate_limits.py): counts
# per window in Redis, shared by every web process, under their own key prefix.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{DRAMATIQ_NAMESPACE}-ratelimit",
    },
}
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_VIEW = "hubsite.views.rate_limited"
# Behind a proxy every client has the proxy's address: name the request.META key of the
# header the proxy sets to the client's address (e.g. HTTP_X_REAL_IP), never one a
# client can set itself.
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY") or None
# django-ratelimit lists only django-redis as a supported Redis cache; Django's own
# RedisCache increments with Redis INCR too, so its "not officially supported" is noise.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
RATE_LIMIT_WINDOW_SECONDS = env_int("RATE_LIMIT_WINDOW_SECONDS", 15 * 60, minimum=1)
RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT = env_int("RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
RATE_LIMIT_LOGIN_FAILURES_PER_IP = env_int("RATE_LIMIT_LOGIN_FAILURES_PER_IP", 20, minimum=1)
RATE_LIMIT_SIGN_UPS_PER_IP = env_int("RATE_LIMIT_SIGN_UPS_PER_IP", 10, minimum=1)
RATE_LIMIT_PASSWORD_RESETS_PER_IP = env_int("RATE_LIMIT_PASSWORD_RESETS_PER_IP", 5, minimum=1)
RATE_LIMIT_PASSWORD_RESETS_PER_ADDRESS = env_int("RATE_LIMIT_PASSWORD_RESETS_PER_ADDRESS", 3, minimum=1)
# "Evaluate again" posts per user (each runs a validation on a light worker, unbilled).
RATE_LIMIT_EVALUATIONS_PER_USER = env_int("RATE_LIMIT_EVALUATIONS_PER_USER", 10, minimum=1)

# The REST API (api/, docs/api.md): requests per key per minute, and how often a key's
# "last used" time is written at most.
API_REQUESTS_PER_MINUTE_PER_KEY = env_int("API_REQUESTS_PER_MINUTE_PER_KEY", 300, minimum=1)
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60

# API keys pages (api/views.py): how many live (not revoked) keys one user may hold.
API_KEYS_PER_USER = env_int("API_KEYS_PER_USER", 20, minimum=1)

# ul:// datasets (api/platform/datasets.py): how long the signed URLs of a dataset's
# NDJSON and images stay valid (a download of a large dataset must finish within it).
PLATFORM_DATASET_URL_SECONDS = env_int("PLATFORM_DATASET_URL_SECONDS", 6 * 60 * 60, minimum=60)

# Training workers. Every worker process refreshes its alive key in Redis every
# WORKER_ALIVE_INTERVAL_SECONDS; the key expires after WORKER_ALIVE_TTL_SECONDS. The
# reaper (light workers, every TRAINING_REAPER_INTERVAL_SECONDS) requeues a session
# whose worker's key expired and whose heartbeat is at least as old: a lost worker is
# noticed within TTL + reaper interval (11 s). A heartbeat older than the stale limit
# requeues a session whatever Redis says (a frozen process; Redis unreachable). A
# session fails after TRAINING_MAX_ATTEMPTS claims in a row without a completed epoch.
TRAINING_WORK_DIR = Path(env_str("TRAINING_WORK_DIR", str(DATA_DIR / "runs")))
DATASET_CACHE_DIR = Path(env_str("DATASET_CACHE_DIR", str(DATA_DIR / "dataset-cache")))
# Least recently used datasets are removed from the cache beyond this size.
DATASET_CACHE_MAX_BYTES = env_int("DATASET_CACHE_MAX_BYTES", 50 * 1024**3, minimum=0)
TRAINING_DEVICE = env_str("TRAINING_DEVICE")  # "" lets ultralytics pick (GPU 0 if present, else CPU)
TRAINING_DATALOADER_WORKERS = env_int("TRAINING_DATALOADER_WORKERS", 0, minimum=0)
TRAINING_HEARTBEAT_INTERVAL_SECONDS = env_int("TRAINING_HEARTBEAT_INTERVAL_SECONDS", 2, minimum=1)
TRAINING_HEARTBEAT_STALE_SECONDS = env_int("TRAINING_HEARTBEAT_STALE_SECONDS", 60, minimum=2)
TRAINING_MAX_ATTEMPTS = env_int("TRAINING_MAX_ATTEMPTS", 3, minimum=1)
WORKER_PRESENCE_INTERVAL_SECONDS = env_int("WORKER_PRESENCE_INTERVAL_SECONDS", 10, minimum=1)
WORKER_ALIVE_INTERVAL_SECONDS = env_int("WORKER_ALIVE_INTERVAL_SECONDS", 2, minimum=1)
WORKER_ALIVE_TTL_SECONDS = env_int("WORKER_ALIVE_TTL_SECONDS", 8, minimum=2)
if WORKER_ALIVE_TTL_SECONDS < 2 * WORKER_ALIVE_INTERVAL_SECONDS:
    raise ImproperlyConfigured(
        f"WORKER_ALIVE_TTL_SECONDS={WORKER_ALIVE_TTL_SECONDS} must be at least twice "
        f"WORKER_ALIVE_INTERVAL_SECONDS={WORKER_ALIVE_INTERVAL_SECONDS}: one late announcement must not read as "
        "a dead worker."
    )
TRAINING_REAPER_INTERVAL_SECONDS = env_int("TRAINING_REAPER_INTERVAL_SECONDS", 3, minimum=1)
# Off: only the heartbeat stale limit detects a lost worker (the rule before presence).
TRAINING_REQUEUE_ON_LOST_PRESENCE = env_bool("TRAINING_REQUEUE_ON_LOST_PRESENCE", default=True)

# E-mail: console in development, SMTP when EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hubsite <noreply@localhost>")

# Stripe: keys only from the environment. STRIPE_API_BASE points the client at the
# local emulator when no real keys are configured.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_str("STRIPE_API_BASE")
# Stripe Checkout (billing/stripe/, docs/stripe.md). The API version is pinned
# for the client and expected on every webhook event; amounts are US cents.
STRIPE_API_VERSION = env_str("STRIPE_API_VERSION", "2026-10-28.endive")
STRIPE_CURRENCY = "usd"
STRIPE_TOP_UP_PRESETS_CENTS = [1_000, 2_000, 5_000, 10_000]  # US$10, 20, 50, 100
STRIPE_TOP_UP_MIN_CENTS = env_int("STRIPE_TOP_UP_MIN_CENTS", 500, minimum=50)
STRIPE_TOP_UP_MAX_CENTS = env_int("STRIPE_TOP_UP_MAX_CENTS", 100_000, minimum=STRIPE_TOP_UP_MIN_CENTS)
STRIPE_CHECKOUT_EXPIRY_MINUTES = env_int("STRIPE_CHECKOUT_EXPIRY_MINUTES", 60, minimum=30)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1)
STRIPE_LOCK_TIMEOUT_MS = env_int("STRIPE_LOCK_TIMEOUT_MS", 5_000, minimum=1)
STRIPE_RECONCILE_INTERVAL_SECONDS = env_int("STRIPE_RECONCILE_INTERVAL_SECONDS", 600, minimum=0)

# Billing: amounts in micro-dollars (1_000_000 = US$1.00); see docs/billing.md.
BILLING_MIN_START_BALANCE_MICROS = env_int("BILLING_MIN_START_BALANCE_MICROS", 5_000_000, minimum=0)
BILLING_DEMO_CREDIT_MICROS = env_int("BILLING_DEMO_CREDIT_MICROS", 20_000_000, minimum=0)
BILLING_LEDGER_PAGE_SIZE = env_int("BILLING_LEDGER_PAGE_SIZE", 50, minimum=1)
# A running epoch's hold stays this much instance time ahead of its cost; when the
# balance cannot cover the next step, the session pauses (the unfinished epoch is free).
BILLING_HOLD_STEP_SECONDS = env_int("BILLING_HOLD_STEP_SECONDS", 60, minimum=1)
BILLING_LEDGER_CHECK_INTERVAL_SECONDS = env_int("BILLING_LEDGER_CHECK_INTERVAL_SECONDS", 600, minimum=0)

# Plans (docs/plans.md): off, everyone may train as before; on, each user has the plan of
# their subscription, a staff grant or the default one. A failed renewal keeps the plan
# this many days (past_due), then Cloud Training is refused until the invoice is paid.
PLANS_ENABLED = env_bool("PLANS_ENABLED", default=True)
PLANS_PAST_DUE_GRACE_DAYS = env_int("PLANS_PAST_DUE_GRACE_DAYS", 7, minimum=0)

# HTTPS and cookies. Production sits behind TLS; a proxy that terminates it must
# set X-Forwarded-Proto.
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

ULTRALYTICS_CONFIG_DIR = ultralytics_offline.configure(DATA_DIR)

"""Keel's settings: one typed `Settings` object (core.py) with a section per concern of the
config file (http.py, store.py, auth.py, quotas.py,
retention.py, webhooks.py), loaded at the edge and passed down."""

from keel.settings.auth import AuthCache, AuthSettings, auth_settings
from keel.settings.core import (
    ENVIRONMENT,
    IGNORED_KEYS,
    SILENT_KEYS,
    SUPPORTED_KEYS,
    GraphSpec,
    Settings,
    load_settings,
    read_config,
)
from keel.settings.http import (
    DEFAULT_MAX_BODY_BYTES,
    HTTP_SURFACES,
    NEVER_COPIED_HEADERS,
    HeaderRules,
    HttpSettings,
)
from keel.settings.retention import (
    CheckpointerSettings,
    RetentionSettings,
    ThreadTtl,
    checkpointer_settings,
    retention_settings,
)
from keel.settings.store import IndexSettings, StoreSettings, TTLSettings, store_settings
from keel.settings.webhooks import RetryPolicy, UrlPolicy, WebhookSettings, webhook_settings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENVIRONMENT",
    "HTTP_SURFACES",
    "IGNORED_KEYS",
    "NEVER_COPIED_HEADERS",
    "SILENT_KEYS",
    "SUPPORTED_KEYS",
    "AuthCache",
    "AuthSettings",
    "CheckpointerSettings",
    "GraphSpec",
    "HeaderRules",
    "HttpSettings",
    "IndexSettings",
    "RetentionSettings",
    "RetryPolicy",
    "Settings",
    "StoreSettings",
    "TTLSettings",
    "ThreadTtl",
    "UrlPolicy",
    "WebhookSettings",
    "auth_settings",
    "checkpointer_settings",
    "load_settings",
    "read_config",
    "retention_settings",
    "store_settings",
    "webhook_settings",
]

"""The store: rollback history, state (primaries, applied plan, RF decisions) and the runner's queue.

Open it with `open_store`; program against `Store`, never against a backend class.
"""

from depmirror.store.base import Store, StoreError
from depmirror.store.factory import DEFAULT_STORE_PATH, STORE_ENV, default_store_url, open_store
from depmirror.store.model import (
    EVENT_KINDS,
    OUTCOMES,
    ActionRecord,
    EnqueueResult,
    Event,
    EventFilter,
    QueuedAlert,
    RfChange,
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "EVENT_KINDS",
    "OUTCOMES",
    "STORE_ENV",
    "ActionRecord",
    "EnqueueResult",
    "Event",
    "EventFilter",
    "QueuedAlert",
    "RfChange",
    "Store",
    "StoreError",
    "default_store_url",
    "open_store",
]

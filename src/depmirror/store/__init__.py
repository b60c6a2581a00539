"""The store: rollback history, state (primaries, applied plan, RF decisions) and the runner's queue.

Open it with `open_store`; program against `Store`, never against a backend class.
"""

from depmirror.store.base import Store, StoreConflict, StoreError
from depmirror.store.factory import DEFAULT_STORE_PATH, STORE_ENV, default_store_url, open_store
from depmirror.store.model import (
    EVENT_KINDS,
    EVERY_DEPENDENCY,
    OUTCOMES,
    ROLLBACK_MODES,
    ActionRecord,
    EnqueueResult,
    Event,
    EventFilter,
    Override,
    QueuedAlert,
    RfChange,
    ZonalShift,
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "EVENT_KINDS",
    "EVERY_DEPENDENCY",
    "OUTCOMES",
    "ROLLBACK_MODES",
    "STORE_ENV",
    "ActionRecord",
    "EnqueueResult",
    "Event",
    "EventFilter",
    "Override",
    "QueuedAlert",
    "RfChange",
    "Store",
    "StoreConflict",
    "StoreError",
    "ZonalShift",
    "default_store_url",
    "open_store",
]

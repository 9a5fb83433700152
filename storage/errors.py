"""What storage raises. Backends raise only ``StorageUnavailable`` (a transient fault: connection
refused, a timeout, a locked or broken database), the work queue's ``QueueFull`` or the object
store's internal ``ObjectNotFound`` (``storage.objects.base``); ``botocore``, ``redis`` and
``sqlite3`` errors never cross the interfaces.

Storage knows nothing of HTTP: the gateway reports ``StorageUnavailable`` and ``QueueFull`` as
their ``code`` (a status with ``Retry-After``, mapped in ``gateway/http/problems.py``).
``retry_after`` and the keyword ``extensions`` travel with the error so the answer can say when to
come back and what failed.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class StorageUnavailable(Exception):
    """A store does not answer, or answers with a fault; trying again later may work."""

    code: ClassVar[str] = "storage_unavailable"

    def __init__(
        self, detail: str | None = None, *, retry_after: float = 1, **extensions: Any
    ) -> None:
        self.detail = detail or "Storage unavailable"
        super().__init__(self.detail)
        self.retry_after = max(1, math.ceil(retry_after))
        self.extensions = extensions


class QueueFull(Exception):
    """The work queue already holds as many jobs as it may; adding one later may work. The
    gateway reports it as the API's ``queue_full`` (``plugins.errors.QueueFull``, which storage
    may not import)."""

    def __init__(
        self, detail: str | None = None, *, retry_after: float = 1, **extensions: Any
    ) -> None:
        self.detail = detail or "Queue full"
        super().__init__(self.detail)
        self.retry_after = max(1, math.ceil(retry_after))
        self.extensions = extensions

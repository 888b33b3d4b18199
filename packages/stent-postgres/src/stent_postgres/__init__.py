"""stent-postgres: Storage on PostgreSQL and a Notifier on LISTEN/NOTIFY for stent.

Not yet functional: this release registers no adapter, so stent reports the PostgreSQL backend as unavailable.
"""

from __future__ import annotations

__version__ = "0.1.0"

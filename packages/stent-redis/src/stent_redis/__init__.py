"""stent-redis: a Notifier on Redis pub/sub for stent.

Not yet functional: this release registers no adapter, so stent reports the Redis backend as unavailable.
"""

from __future__ import annotations

__version__ = "0.1.0"

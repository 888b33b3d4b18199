"""stent-nats: a Notifier on NATS for stent.

Not yet functional: this release registers no adapter, so stent reports the NATS backend as unavailable.
"""

from __future__ import annotations

__version__ = "0.1.0"

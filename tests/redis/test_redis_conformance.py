"""The notifier conformance suite against Redis pub/sub: a prefix per test, connections killed server-side."""

from __future__ import annotations

from stent.testing.conformance.notifier import NotifierConformance


class TestRedisNotifierConformance(NotifierConformance):
    pass

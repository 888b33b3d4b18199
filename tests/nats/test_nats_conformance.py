"""The notifier conformance suite against NATS: a subject prefix per test, connections cut at a proxy."""

from __future__ import annotations

from stent.testing.conformance.notifier import NotifierConformance


class TestNatsNotifierConformance(NotifierConformance):
    pass

"""Fake provider servers, one module per provider, each defining `Fake` (a `FakeProvider`)."""

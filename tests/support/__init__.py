"""Test helpers: real servers on loopback (the service, a recording subscriber, fake providers)."""

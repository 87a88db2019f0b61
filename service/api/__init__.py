"""The HTTP API: one module per resource, assembled by service/app.py."""

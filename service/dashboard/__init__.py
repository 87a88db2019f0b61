"""The dashboard: see and operate every job, event and delivery in a browser, at GET /."""

from service.dashboard.routes import Dashboard

__all__ = ["Dashboard"]

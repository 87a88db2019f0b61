"""videohooks: the HTTP API, the job engine, the worker loops and the CLI."""

from importlib.metadata import version

# The installed package's version: what `videohooks --version` and the OpenAPI document say.
__version__ = version("videohooks")

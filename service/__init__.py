"""videohooks: the HTTP API, the job engine, the worker loops and the CLI."""

"""Runnable examples: ``python -m corosio_py.examples.<name>``."""

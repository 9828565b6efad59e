"""Keel: a durable, open-source runtime for LangGraph agents."""

__version__ = "0.1.0"

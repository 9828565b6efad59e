"""Authentication and authorization: `langgraph_sdk.Auth` handlers and their filters, Keel's
built-in API keys and JWT, organisations and roles, quotas, the audit log.

`Guard` (guard.py) is the one object the HTTP edge talks to: it authenticates a request into a
`User` and turns each resource action into a `Scope`, the rows the caller may touch.
"""

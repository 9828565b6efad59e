"""Open protocols: Keel's assistants served over MCP and A2A, and MCP servers used by graphs."""

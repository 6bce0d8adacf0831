"""Mobile robot controller over HTTP + WebSocket: typed messages, blocking client, push stream."""

"""Bounded storage: what Keel keeps and for how long. The sweeper (`sweeps`: thread TTLs, event-log
retention, stateless runs, store items), `keel db stats` (`stats`) and `keel db vacuum`
(`vacuum`). Their settings are `keel.settings.retention`; their SQL `keel.storage.queries`."""

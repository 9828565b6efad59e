"""The thread-centric ("v3") streaming protocol: one event stream per thread, commands.

- `events`: the worker side (a v3 run's LangGraph stream parts become protocol events in the
  run's durable event log) and the read side (stored events become wire events with a
  thread-wide `seq`).
- `channels`: the subscription filter (channels, namespaces, depth).
- `feed`: a thread's events, replayed after `since` and then followed live.
- `commands`: the `POST /threads/{id}/commands` methods.
"""

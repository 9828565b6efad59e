"""Work that happens without a client: webhook delivery from a durable outbox, sleep-time
triggers that enqueue background runs (crons are fired by `keel.scheduler`)."""

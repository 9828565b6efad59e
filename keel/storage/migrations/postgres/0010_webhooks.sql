-- Webhooks (issue 13): the durable outbox. A row is written in a run's terminal transaction when
-- the run named a webhook (keel/background/outbox.py); one per run. `payload` is the body as the
-- run ended (without `webhook_sent_at`); `webhook_id` is the same on every attempt. A delivery
-- being attempted holds a lease (`leased_by`, `lease_until`, epoch seconds).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    thread_id TEXT COLLATE "C" NOT NULL,
    webhook_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    give_up_at DOUBLE PRECISION NOT NULL,
    leased_by TEXT,
    lease_until DOUBLE PRECISION,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_thread ON webhook_deliveries(thread_id);

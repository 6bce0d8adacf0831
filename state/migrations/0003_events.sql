-- The operator-facing event journal (seed 002 "Events / Journal"): the durable bus events an
-- operator should see, each with a severity, a category and a sentence (controller/events.py).
-- `id` is the bus seq of the event, so an entry points at its journal row.
-- Acknowledgements are their own append-only rows: entries are never updated, so writing
-- them stays a plain group-committed insert, and a second ack of an entry is harmless.

CREATE TABLE events (
    id       BIGINT PRIMARY KEY,
    ts_us    BIGINT NOT NULL,
    severity VARCHAR NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    category VARCHAR NOT NULL,
    source   VARCHAR,
    message  VARCHAR NOT NULL,
    topic    VARCHAR NOT NULL
);

CREATE TABLE event_acks (
    event_id BIGINT NOT NULL,
    ack_us   BIGINT NOT NULL,
    ack_by   VARCHAR NOT NULL
);

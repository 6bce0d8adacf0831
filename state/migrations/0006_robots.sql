-- Mobile robots (seed 003): their telemetry logs copied into the station store, and the alerts
-- they raise.
--
-- Telemetry is copied by the robot's actor every telemetry_interval_s from the robot's own logs
-- (which keep only the newest 500 per kind), so the history outlives the robot's memory and can
-- be read while the robot is offline. `entry` is the entry as the robot sent it (JSON);
-- recorded_us is the robot's stamp, stored_us Takt's. log_id restarts when the robot's
-- controller does, so rows are ordered by recorded_us, then log_id. No key: the actor copies
-- only entries newer than the newest stored one of their kind.
--
-- An alert arrives on the robot's stream, by its webhook, or from its alert list after a
-- reconnect; its uuid keeps it to one row whichever way comes first (`via`).

CREATE TABLE robot_logs (
    robot        VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL
                 CHECK (kind IN ('activity', 'connectivity', 'location', 'battery', 'system')),
    log_id       BIGINT NOT NULL,
    recorded_us  BIGINT NOT NULL,
    stored_us    BIGINT NOT NULL,
    entry        VARCHAR NOT NULL
);

CREATE TABLE robot_alerts (
    uuid             VARCHAR PRIMARY KEY,
    robot            VARCHAR NOT NULL,
    device_id        VARCHAR NOT NULL,
    raised_us        BIGINT NOT NULL,
    received_us      BIGINT NOT NULL,
    via              VARCHAR NOT NULL CHECK (via IN ('stream', 'webhook', 'backfill')),
    source           VARCHAR NOT NULL,
    severity         INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 5),
    header           VARCHAR NOT NULL,
    body             VARCHAR NOT NULL,
    action_required  VARCHAR
);

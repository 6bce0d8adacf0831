-- Smart wrenches (seed 000 "Smart Wrench"): every tightening result as evidence, the torque
-- settings (psets) set at run time, and the controls Takt keeps per wrench.
--
-- A tightening row is written (autocommit, by the wrench's actor on its own cursor) before the
-- result is published, so every published result has its evidence row. Torques are kept as the
-- controller sends them, integers in hundredths of N·m (cN·m), so no float rounding creeps in.
-- controller_time is the controller's own clock (local time, no zone); received_us is Takt's.
-- takt_* are Takt's limits for the pset when Takt knows the pset (NULL otherwise); `flag` says
-- why Takt judged a result differently from the controller; `ok` is the verdict that counts.
--
-- Rows are keyed by the wrench's name, so renaming a wrench leaves its history under the old
-- name. No secondary indexes: ids rise with time, and listings of one wrench scan the narrow
-- wrench column, as print_jobs does.

CREATE SEQUENCE tightenings_id_seq START 1;

CREATE TABLE tightenings (
    id                   BIGINT PRIMARY KEY DEFAULT nextval('tightenings_id_seq'),
    wrench               VARCHAR NOT NULL,
    tightening_id        BIGINT NOT NULL,
    controller_name      VARCHAR NOT NULL,
    cell_id              INTEGER NOT NULL,
    channel_id           INTEGER NOT NULL,
    job_id               INTEGER NOT NULL,
    pset                 INTEGER NOT NULL,
    vin                  VARCHAR NOT NULL,
    batch_size           INTEGER NOT NULL,
    batch_counter        INTEGER NOT NULL,
    batch_status         VARCHAR NOT NULL CHECK (batch_status IN ('nok', 'ok', 'not_used')),
    controller_ok        BOOLEAN NOT NULL,
    torque_status        VARCHAR NOT NULL CHECK (torque_status IN ('low', 'ok', 'high')),
    angle_status         VARCHAR NOT NULL CHECK (angle_status IN ('low', 'ok', 'high')),
    torque_cnm           INTEGER NOT NULL,
    torque_min_cnm       INTEGER NOT NULL,
    torque_max_cnm       INTEGER NOT NULL,
    torque_target_cnm    INTEGER NOT NULL,
    angle                INTEGER NOT NULL,
    angle_min            INTEGER NOT NULL,
    angle_max            INTEGER NOT NULL,
    angle_target         INTEGER NOT NULL,
    takt_torque_min_cnm  INTEGER,
    takt_torque_max_cnm  INTEGER,
    takt_angle_min       INTEGER,
    takt_angle_max       INTEGER,
    takt_ok              BOOLEAN,
    flag                 VARCHAR,
    ok                   BOOLEAN NOT NULL,
    controller_time      TIMESTAMP NOT NULL,
    received_us          BIGINT NOT NULL
);

-- Takt's torque settings of a pset set at run time (POST /api/v1/wrenches/{name}/program,
-- PUT /api/v1/torque/settings); for that pset they take the place of the config's [[psets]].
CREATE TABLE wrench_programs (
    wrench           VARCHAR NOT NULL,
    pset             INTEGER NOT NULL CHECK (pset BETWEEN 0 AND 999),
    name             VARCHAR NOT NULL,
    torque_min_nm    DOUBLE NOT NULL,
    torque_max_nm    DOUBLE NOT NULL,
    torque_target_nm DOUBLE NOT NULL,
    angle_min        INTEGER,
    angle_max        INTEGER,
    batch_size       INTEGER NOT NULL DEFAULT 0,
    updated_us       BIGINT NOT NULL,
    updated_by       VARCHAR,
    PRIMARY KEY (wrench, pset)
);

-- What Takt holds for a wrench across reconnects and restarts: the tool interlock (lock), the
-- tool state Takt wants, the pset it selected, the sequence (batch) it expects and how far it
-- is, and where ClearState cleared the last result. One row per wrench, written on change.
CREATE TABLE wrench_controls (
    wrench           VARCHAR PRIMARY KEY,
    tool_enabled     BOOLEAN NOT NULL,
    locked           BOOLEAN NOT NULL,
    selected_pset    INTEGER,
    sequence_pset    INTEGER,
    sequence_size    INTEGER NOT NULL,
    sequence_counter INTEGER NOT NULL,
    cleared_through  BIGINT NOT NULL,
    malformed        BIGINT NOT NULL,
    updated_us       BIGINT NOT NULL
);

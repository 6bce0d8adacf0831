-- Step events (seed 004): every start and finish of a step on a machine, for a part, a recipe
-- version, a step number and a work order, written by the sequencer as it coaches and by
-- integrators through /api/v1/step_events.
--
-- Machine 1 is the station itself (name = the station id, display_name = the station's name),
-- written at start-up by state.step_events.ensure_station_machine; other machines may be
-- added later, so the sequence starts at 2. Machines are found by display_name.
-- Parts, recipes (a part's version) and recipe steps (a recipe's step number) are created on
-- first use. The seed calls them steps; `recipe_steps` here, because `steps` are the
-- assembly steps of migration 0007.
--
-- An event is open while end_us is NULL, and a machine has at most one open event: starting
-- a new one finishes the open one at the new start with ending_type 'auto' (state.step_events
-- does both in one transaction; duckdb has no partial unique index to say it here).
-- A step event names who did it: an operator (operator_id) or a Takt user (user_id), found by
-- email. record_id is the sequencer's assembly record, NULL for events posted through the API.
-- No secondary indexes: ids and start_us rise together, so zonemaps prune time ranges.

CREATE SEQUENCE machines_id_seq START 2;
CREATE SEQUENCE parts_id_seq START 1;
CREATE SEQUENCE recipes_id_seq START 1;
CREATE SEQUENCE recipe_steps_id_seq START 1;
CREATE SEQUENCE step_events_id_seq START 1;

CREATE TABLE machines (
    id            BIGINT PRIMARY KEY DEFAULT nextval('machines_id_seq'),
    name          VARCHAR NOT NULL,
    display_name  VARCHAR NOT NULL UNIQUE,
    created_us    BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
);

CREATE TABLE parts (
    id                 BIGINT PRIMARY KEY DEFAULT nextval('parts_id_seq'),
    unique_identifier  VARCHAR NOT NULL UNIQUE,
    description        VARCHAR,
    created_us         BIGINT NOT NULL,
    updated_us         BIGINT NOT NULL
);

CREATE TABLE recipes (
    id           BIGINT PRIMARY KEY DEFAULT nextval('recipes_id_seq'),
    part_id      BIGINT NOT NULL,
    version      VARCHAR NOT NULL,
    description  VARCHAR,
    created_us   BIGINT NOT NULL,
    updated_us   BIGINT NOT NULL,
    UNIQUE (part_id, version)
);

CREATE TABLE recipe_steps (
    id                BIGINT PRIMARY KEY DEFAULT nextval('recipe_steps_id_seq'),
    recipe_id         BIGINT NOT NULL,
    number            VARCHAR NOT NULL,
    description       VARCHAR,
    expected_cycle_s  DOUBLE CHECK (expected_cycle_s >= 0),
    expected_setup_s  DOUBLE CHECK (expected_setup_s >= 0),
    created_us        BIGINT NOT NULL,
    updated_us        BIGINT NOT NULL,
    UNIQUE (recipe_id, number)
);

CREATE TABLE step_events (
    id            BIGINT PRIMARY KEY DEFAULT nextval('step_events_id_seq'),
    machine_id    BIGINT NOT NULL,
    step_id       BIGINT NOT NULL,
    operator_id   BIGINT,
    user_id       BIGINT,
    start_us      BIGINT NOT NULL CHECK (start_us >= 0),
    end_us        BIGINT CHECK (end_us >= start_us),
    qty_expected  BIGINT CHECK (qty_expected >= 0),
    wo_number     VARCHAR,
    qty_made      BIGINT CHECK (qty_made >= 0),
    qty_scrapped  BIGINT CHECK (qty_scrapped >= 0),
    ending_type   VARCHAR NOT NULL DEFAULT 'manual' CHECK (ending_type IN ('manual', 'auto')),
    source        VARCHAR NOT NULL CHECK (source IN ('api', 'sequencer')),
    record_id     BIGINT,
    created_us    BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
);

-- Assemblies and coaching (seed 000 "Assembly Revisions", "Assemblies", "Steps", "Assembly
-- Records"): what the sequencer coaches, and what each coaching session left behind.
--
-- An assembly revision is a product's family; its assemblies are numbered versions
-- (`version` 1, 2, ...). A published assembly is frozen: its steps never change again, so
-- every record points at exactly what the operator was shown; an edit is a new version
-- (copy). Coachable: per family, its active assembly if published, else the latest published.
-- Steps are ordered by `position` (0..n-1, kept dense); step data by `position` within their
-- step; step data infos are the seed's key/value pairs.
--
-- An assembly record is one coaching session; it is written when the session starts and
-- updated at each step, so a restarted sequencer resumes the open one (ended_us NULL).
-- Step records are written when a step starts (ended_us NULL) and completed when it ends.

CREATE SEQUENCE assembly_revisions_id_seq START 1;
CREATE SEQUENCE assemblies_id_seq START 1;
CREATE SEQUENCE steps_id_seq START 1;
CREATE SEQUENCE step_data_id_seq START 1;
CREATE SEQUENCE step_data_infos_id_seq START 1;
CREATE SEQUENCE assembly_records_id_seq START 1;
CREATE SEQUENCE step_records_id_seq START 1;

CREATE TABLE assembly_revisions (
    id                  BIGINT PRIMARY KEY DEFAULT nextval('assembly_revisions_id_seq'),
    name                VARCHAR NOT NULL UNIQUE,
    description         VARCHAR NOT NULL DEFAULT '',
    image_link          VARCHAR,
    active_assembly_id  BIGINT,
    created_us          BIGINT NOT NULL
);

CREATE TABLE assemblies (
    id                BIGINT PRIMARY KEY DEFAULT nextval('assemblies_id_seq'),
    revision_id       BIGINT NOT NULL,
    version           INTEGER NOT NULL,
    name              VARCHAR NOT NULL,
    description       VARCHAR NOT NULL DEFAULT '',
    image_link        VARCHAR,
    product_version   VARCHAR,
    model_version     VARCHAR,
    notes             VARCHAR NOT NULL DEFAULT '',
    approver          VARCHAR,
    record_videos     BOOLEAN NOT NULL DEFAULT false,
    published         BOOLEAN NOT NULL DEFAULT false,
    published_us      BIGINT,
    lighting_aug      DOUBLE NOT NULL DEFAULT 0,
    placement_aug     DOUBLE NOT NULL DEFAULT 0,
    color_aug         DOUBLE NOT NULL DEFAULT 0,
    created_us        BIGINT NOT NULL,
    last_edited_us    BIGINT NOT NULL,
    UNIQUE (revision_id, version)
);

CREATE TABLE steps (
    id               BIGINT PRIMARY KEY DEFAULT nextval('steps_id_seq'),
    assembly_id      BIGINT NOT NULL,
    position         INTEGER NOT NULL,
    name             VARCHAR NOT NULL,
    description      VARCHAR NOT NULL DEFAULT '',
    image_link       VARCHAR,
    video_link       VARCHAR,
    overlay_link     VARCHAR,
    minimum_predict  DOUBLE NOT NULL DEFAULT 0,
    benchmark_s      DOUBLE NOT NULL DEFAULT 0,
    roi_zoom         VARCHAR,
    camera_id        VARCHAR
);

CREATE TABLE step_data (
    id        BIGINT PRIMARY KEY DEFAULT nextval('step_data_id_seq'),
    step_id   BIGINT NOT NULL,
    position  INTEGER NOT NULL,
    action    VARCHAR NOT NULL
);

CREATE TABLE step_data_infos (
    id            BIGINT PRIMARY KEY DEFAULT nextval('step_data_infos_id_seq'),
    step_data_id  BIGINT NOT NULL,
    key           VARCHAR NOT NULL,
    value         VARCHAR NOT NULL,
    UNIQUE (step_data_id, key)
);

CREATE TABLE assembly_records (
    id               BIGINT PRIMARY KEY DEFAULT nextval('assembly_records_id_seq'),
    assembly_id      BIGINT NOT NULL,
    revision_id      BIGINT NOT NULL,
    station_id       VARCHAR NOT NULL,
    operator_id      BIGINT,
    work_order       VARCHAR,
    part_serial      VARCHAR,
    started_us       BIGINT NOT NULL,
    ended_us         BIGINT,
    outcome          VARCHAR CHECK (outcome IN ('ok', 'nok', 'incomplete', 'aborted')),
    reason           VARCHAR,
    released         BOOLEAN NOT NULL DEFAULT false,
    auto_advance     BOOLEAN NOT NULL,
    release_enabled  BOOLEAN NOT NULL,
    current_step     INTEGER NOT NULL DEFAULT 0,
    step_started_us  BIGINT,
    variables        VARCHAR NOT NULL DEFAULT '{}',
    failed           VARCHAR
);

CREATE TABLE step_records (
    id           BIGINT PRIMARY KEY DEFAULT nextval('step_records_id_seq'),
    record_id    BIGINT NOT NULL,
    step_index   INTEGER NOT NULL,
    step_id      BIGINT NOT NULL,
    name         VARCHAR NOT NULL,
    started_us   BIGINT NOT NULL,
    ended_us     BIGINT,
    cycle_s      DOUBLE,
    benchmark_s  DOUBLE NOT NULL,
    ok           BOOLEAN,
    skipped      BOOLEAN,
    reworked     BOOLEAN,
    evidence     VARCHAR NOT NULL DEFAULT '[]'
);

-- Visual inspection (seed 001): inspections and what they found, the registry of vision
-- models, the inspector's alerts, batch jobs over folders of images, and the active-learning
-- queue of images a person should label.
--
-- inspections: one row per inspected image (an upload, a camera capture, a batch file).
-- Continuous camera predictions are published, not stored. Rows arrive in at_us order through
-- the store's group commit, so duckdb's zonemaps (min/max per row group) prune a time range
-- without any index: statistics and trends over the last hours read only those row groups.
-- For the same reason there is no primary key: an ART index over 10M UUIDs costs every insert
-- and hundreds of MB of memory, while ids are UUIDv7 made from at_us, so they rise with the
-- rows and a lookup by id is pruned by the zonemap of `id` just the same (~1 ms at 10M rows).
-- image_ref is a path under the data directory's `inspections/` folder, NULL when not kept.
-- Deleting an inspection deletes its detections and its active-learning entry with it.
--
-- detections: what an inspection found (the winning class with its box, for a classifier);
-- area_mm2 only when the inspector knows the scale (mm_per_pixel).

CREATE TYPE inspection_decision AS ENUM ('pass', 'fail', 'uncertain');
CREATE TYPE inspection_source AS ENUM ('upload', 'camera', 'batch', 'stream');

CREATE TABLE inspections (
    id             UUID NOT NULL,
    station_id     VARCHAR NOT NULL,
    camera         VARCHAR,
    part_id        VARCHAR,
    source         inspection_source NOT NULL,
    decision       inspection_decision NOT NULL,
    confidence     DOUBLE NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    label          VARCHAR NOT NULL,
    objects_found  INTEGER NOT NULL CHECK (objects_found >= 0),
    total_time_ms  DOUBLE NOT NULL CHECK (total_time_ms >= 0),
    inference_ms   DOUBLE NOT NULL CHECK (inference_ms >= 0),
    model_id       VARCHAR,
    image_ref      VARCHAR,
    at_us          BIGINT NOT NULL
);

CREATE TABLE detections (
    inspection_id  UUID NOT NULL,
    class_name     VARCHAR NOT NULL,
    confidence     DOUBLE NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    x1             INTEGER,
    y1             INTEGER,
    x2             INTEGER,
    y2             INTEGER,
    area_mm2       DOUBLE CHECK (area_mm2 >= 0)
);

-- The model registry: every imported or trained model version. One row is active (deployed);
-- previous_id is the model that was active when this one was deployed, for rollback.
CREATE TABLE vision_models (
    id              VARCHAR PRIMARY KEY,
    name            VARCHAR NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    path            VARCHAR NOT NULL,
    labels          JSON NOT NULL,
    kind            VARCHAR NOT NULL CHECK (kind IN ('ir', 'onnx')),
    source          VARCHAR NOT NULL CHECK (source IN ('trained', 'imported')),
    metrics         JSON,
    created_us      BIGINT NOT NULL,
    deployed_at_us  BIGINT,
    active          BOOLEAN NOT NULL DEFAULT false,
    previous_id     VARCHAR,
    UNIQUE (name, version)
);

-- Alerts the inspector raises (pass rate, fails in a row, model or camera errors). kind says
-- which rule; cleared_us is set when its condition ended (a later occurrence is a new row).
CREATE TABLE inspection_alerts (
    id               VARCHAR PRIMARY KEY,
    kind             VARCHAR NOT NULL,
    severity         VARCHAR NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    title            VARCHAR NOT NULL,
    message          VARCHAR NOT NULL,
    at_us            BIGINT NOT NULL,
    cleared_us       BIGINT,
    acknowledged     BOOLEAN NOT NULL DEFAULT false,
    acknowledged_by  VARCHAR,
    acknowledged_us  BIGINT
);

CREATE TABLE inspection_batch_jobs (
    id            VARCHAR PRIMARY KEY,
    name          VARCHAR NOT NULL,
    input_dir     VARCHAR NOT NULL,
    file_pattern  VARCHAR NOT NULL,
    part_id       VARCHAR,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('pending', 'running', 'completed', 'cancelled', 'failed')),
    total         INTEGER NOT NULL DEFAULT 0,
    done          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    created_us    BIGINT NOT NULL,
    started_us    BIGINT,
    finished_us   BIGINT,
    error         VARCHAR
);

-- Images a person should label: uncertain inspections, with their image. Annotations are
-- seed 001's list of {class_name, bbox}; trained marks images a training run has used.
CREATE TABLE active_learning (
    id             UUID NOT NULL,
    inspection_id  UUID NOT NULL,
    image_ref      VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    status         VARCHAR NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'labeled', 'trained')),
    annotations    JSON,
    reviewed_by    VARCHAR,
    reviewed_us    BIGINT,
    at_us          BIGINT NOT NULL
);

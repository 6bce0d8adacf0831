-- Marking codes (seed 002 "Bottles"), batches (production batches, packages and boxes), the
-- history of which code was in which batch, and the batch-accounting buffer. Rules live in
-- controller/codes.py and controller/batches.py; state/codes.py keeps these tables consistent.
--
-- Duplicate detection. Every new code is checked against every stored one, at line rate (one or
-- a few codes per commit) and in bulk imports (thousands). Measured with 10M stored codes (GTIN +
-- 13-character serial) on this 2-core machine, duckdb 2.0, medians, while the box was shared:
--
--   option                                     1 code    100 codes   1,000      5,000
--   PRIMARY KEY (ART) on code, IN-list lookup  2.7 ms    15 ms       170 ms     610 ms
--   no index, semi-join on the code string     700 ms    480 ms      510 ms     350 ms
--   BIGINT hash column, no index, semi-join    24 ms     58 ms       55 ms      58 ms
--   ART index on the hash column, IN-list      42 ms     670 ms      1.1 s+     -
--   PRIMARY KEY + INSERT .. ON CONFLICT DO NOTHING: 350-700 ms per batch of 100-1,000
--   (duckdb plans the conflict check as a join over a full scan, not index probes)
--
-- The ART answers a few codes in milliseconds (and every REMOVE/REJECTION/PACKAGE scan looks one
-- code up by value), but IN-lists past a few hundred values become a hash join whose cost grows
-- with the list. A semi-join of the incoming hashes against the 8-byte hash column costs a flat
-- ~50 ms at 10M rows whatever the batch size. So: code is the PRIMARY KEY (fast single lookups,
-- and the last guard against a duplicate), and code_hash serves bulk checks over 256 codes
-- (candidates by hash, then confirmed through the key). code_hash is blake2b-64 computed in
-- Python, not duckdb's hash(), which is not promised to stay the same across versions.
-- The price of the key at 10M codes (probe table of code, id and two small columns): the file
-- is ~580 MiB instead of ~190 MiB, the warm index holds ~200 MiB of duckdb's memory, inserting
-- 1,000 codes costs ~7 ms (index checks included) and a checkpoint ~40 ms instead of ~15 ms.
-- As built (bench/code_store.py, 10M codes stored, 10% duplicates): the check takes 1.3 ms for
-- one code, 9 ms for 100, 41 ms for 1,000 and 71 ms for 5,000; insert_codes with its durable
-- COMMIT 6 ms for one code and 109 ms for 5,000 (46k codes/s). biip's validation (~5k codes/s)
-- is the slower half of a bulk import.
--
-- No other indexes: ids and created_us rise with insertion, so zonemaps prune the cursor and
-- time-range scans of listings; status and batch filters scan one narrow column.

CREATE SEQUENCE codes_id_seq START 1;

-- code is the normalized form (01 + GTIN + 21 + serial, or 00 + SSCC); raw is the code as GS1
-- element strings with GS separators and the crypto tail, what the cloud and printers need.
-- batch_id is the batch the code is in now (its history is in batch_members).
CREATE TABLE codes (
    id         BIGINT NOT NULL DEFAULT nextval('codes_id_seq'),
    code       VARCHAR PRIMARY KEY,
    code_hash  BIGINT NOT NULL,
    raw        VARCHAR NOT NULL,
    gtin       VARCHAR,
    serial     VARCHAR,
    industry   VARCHAR NOT NULL,
    status     UTINYINT NOT NULL DEFAULT 0 CHECK (status <= 5),
    batch_id   BIGINT,
    line_id    VARCHAR,
    source     VARCHAR,
    party      VARCHAR,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);

CREATE SEQUENCE batches_id_seq START 1;

-- member_count counts direct members (codes, and packages nested in a box) so that the capacity
-- rule needs no scan of codes; state/codes.py updates it in the transaction that adds or removes.
CREATE TABLE batches (
    id           BIGINT PRIMARY KEY DEFAULT nextval('batches_id_seq'),
    identifier   VARCHAR NOT NULL UNIQUE,
    name         VARCHAR,
    kind         VARCHAR NOT NULL CHECK (kind IN ('batch', 'package', 'box')),
    status       VARCHAR NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'complete', 'sent', 'synced', 'cancelled')),
    capacity     INTEGER CHECK (capacity IS NULL OR capacity > 0),
    member_count INTEGER NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    gtin         VARCHAR,
    parent_id    BIGINT,
    line_id      VARCHAR,
    device_id    VARCHAR,
    created_us   BIGINT NOT NULL,
    updated_us   BIGINT NOT NULL,
    closed_us    BIGINT
);

-- Append-mostly traceability: a row per stay of a code in a batch; removed_us closes it.
-- Batches fill one after another, so batch_id rises with insertion and zonemaps find a batch's
-- rows without an index.
CREATE TABLE batch_members (
    batch_id   BIGINT NOT NULL,
    code       VARCHAR NOT NULL,
    added_us   BIGINT NOT NULL,
    removed_us BIGINT
);

-- Batch accounting (Партионный учёт): codes of production batches loaded for a
-- VERIFY_LOCAL_BUFFER scanner. A code belongs to one production batch, so code is the key,
-- which also makes the per-scan lookup an index probe.
CREATE TABLE buffer_codes (
    code             VARCHAR PRIMARY KEY,
    batch_identifier VARCHAR NOT NULL,
    loaded_us        BIGINT NOT NULL,
    consumed_us      BIGINT,
    consumed_by      VARCHAR
);

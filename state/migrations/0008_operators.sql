-- Shop-floor operators (seed 000 "Operators"): the people coached at the station. They are not
-- Takt's API users (engineers and admins who log in to the API); an operator logs in at the
-- station by RFID badge or by name and password.
--
-- rfid and email are optional and unique among operators (NULLs do not clash). email is kept
-- in lower case, so step events find an operator by email whatever case the caller used.
-- Names are unique case-insensitively, checked by state.operators (duckdb has no unique index
-- on an expression): lookup and authentication by name must find exactly one operator.
-- password_hash is an argon2 hash, NULL while the operator has no password; it never leaves
-- the station. num_records counts the operator's assembly records; the sequencer adds to it
-- (state.operators.note_record) when it opens a record for the operator.

CREATE SEQUENCE operators_id_seq START 1;

CREATE TABLE operators (
    id             BIGINT PRIMARY KEY DEFAULT nextval('operators_id_seq'),
    first_name     VARCHAR NOT NULL,
    last_name      VARCHAR NOT NULL,
    role           VARCHAR NOT NULL,
    active         BOOLEAN NOT NULL DEFAULT true,
    rfid           VARCHAR UNIQUE,
    email          VARCHAR UNIQUE CHECK (email = lower(email)),
    password_hash  VARCHAR,
    num_records    BIGINT NOT NULL DEFAULT 0 CHECK (num_records >= 0),
    created_us     BIGINT NOT NULL,
    updated_us     BIGINT NOT NULL
);

-- Label printing (seed 002 "Printers"): label templates per printer, and every print job.
--
-- A job row is written (autocommit, by the printer's actor on its own cursor) before any byte
-- of it goes to the printer, and counter_before (the printer's label counter read before the
-- job was sent) is stored before the job is sent: a retry after a lost link or a restart
-- compares the printer's counter with it, so a job is never printed twice
-- (drivers/zpl/client.py). States and their legal changes: state/printing.py.
--
-- Jobs and templates are keyed by the printer's name, so renaming a printer leaves its history
-- under the old name. No secondary indexes: ids rise with time and the unfinished jobs of a
-- printer are few; listings scan the narrow printer and state columns.

CREATE SEQUENCE print_jobs_id_seq START 1;

CREATE TABLE print_jobs (
    id             BIGINT PRIMARY KEY DEFAULT nextval('print_jobs_id_seq'),
    printer        VARCHAR NOT NULL,
    template       VARCHAR NOT NULL,
    code           VARCHAR,
    fields         JSON NOT NULL,
    zpl            BLOB NOT NULL,
    labels         INTEGER NOT NULL CHECK (labels >= 1),
    state          VARCHAR NOT NULL
                   CHECK (state IN ('queued', 'held', 'sent', 'done', 'partial', 'failed')),
    reason         VARCHAR,
    counter_before BIGINT,
    counter_after  BIGINT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    requested_by   VARCHAR,
    created_us     BIGINT NOT NULL,
    updated_us     BIGINT NOT NULL,
    done_us        BIGINT
);

CREATE TABLE printer_templates (
    printer    VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    body       VARCHAR NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    updated_by VARCHAR,
    PRIMARY KEY (printer, name)
);

-- Point lookups for what is open: a machine's open step event and a record's open step record
-- were found by scanning step_events / step_records, which grow with every coached step (3 ms
-- a lookup after a few hundred events; bench/coaching_ws.py). Each is now kept by id.

ALTER TABLE machines ADD COLUMN open_event_id BIGINT;
UPDATE machines SET open_event_id = (
    SELECT max(e.id) FROM step_events e WHERE e.machine_id = machines.id AND e.end_us IS NULL);

ALTER TABLE assembly_records ADD COLUMN open_step_id BIGINT;
UPDATE assembly_records SET open_step_id = (
    SELECT max(s.id) FROM step_records s WHERE s.record_id = assembly_records.id
    AND s.ended_us IS NULL);

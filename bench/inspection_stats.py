"""Statistics and trends over 10M stored inspections, computed from the rows on every call.

Fill (set-up, timed, not part of the figures): a fresh database with Takt's schema
(state.connection.open_database runs the migrations) gets `--rows` inspections (10M; 1M with
--quick) over the 30 days before now, in time order, in one `INSERT ... SELECT FROM range()`:
three stations, 90% pass / 7% fail / 3% uncertain, five labels, UUIDv7 ids made from at_us
as state.inspections.inspection_id makes them, and a detection for every failed one.
Measured, each query run afresh (no cache anywhere), median and p90 over the runs:
- `inspection_statistics` and `inspection_trends` (hour and day buckets) for the last 24 h
  and 168 h (the API's default and largest window), all stations and one, through a
  QueryActor (the facade's path: an ask from a plain thread, the handler, the msgspec result);
- the same functions straight on a cursor (what the actor adds is the difference);
- diagnostic: the whole table in the window (30 days, beyond the API's 168 h);
- diagnostic: one inspection by id (zonemap on the UUIDv7 id, no index) and the newest page.
Baseline (same run, same machine state): the same aggregates as plain SQL over a bare table of
only the columns they read (at_us, station_id, decision VARCHAR, label, total_time_ms), made
from the same rows. Budget: <= 100 ms each (statistics, trends) at 24 h and 168 h.
Run: .venv/bin/python bench/inspection_stats.py [--quick] [--rows N]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from _support.common import emit, machine, parse_args

from actors.inspector_messages import GetInspection, InspectionStats, InspectionTrend
from actors.query import QueryActor
from actors.runtime import Runtime, call
from state.connection import open_database
from state.inspections import (
    InspectionFilter,
    get_inspection,
    inspection_statistics,
    inspection_trends,
    list_inspections,
)

BUDGET_MS = 100.0
HOUR_US = 3_600_000_000
SPAN_US = 30 * 24 * HOUR_US

# The UUIDv7 of state.inspections.inspection_id, in SQL: 48 bits of ms, version 7, 12 bits of
# sub-ms, variant, 62 random bits (from a hash of the row number).
_UUID7 = """(
    lpad(to_hex(at_us // 1000), 12, '0') || '7'
    || lpad(to_hex(((at_us % 1000) * 4096) // 1000), 3, '0')
    || to_hex(8 + hash(i) % 4) || lpad(to_hex((hash(i) >> 4) % 1152921504606846976), 15, '0')
)"""


def fill(con: duckdb.DuckDBPyConnection, rows: int, now_us: int) -> dict[str, float]:
    t0 = time.perf_counter()
    step = SPAN_US // rows
    con.execute(f"""
        INSERT INTO inspections
        SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
                || substr(h, 17, 4) || '-' || substr(h, 21, 12))::UUID AS id,
               'station-' || (i % 3) AS station_id, 'cam1' AS camera,
               'P-' || i AS part_id, 'camera' AS source,
               CASE WHEN r < 90 THEN 'pass' WHEN r < 97 THEN 'fail' ELSE 'uncertain' END
                   AS decision,
               0.5 + (r % 50) / 100.0 AS confidence,
               CASE WHEN r < 90 THEN 'screws_tight' WHEN r < 93 THEN 'scratch'
                    WHEN r < 95 THEN 'misplaced' WHEN r < 97 THEN 'missing_screw'
                    ELSE 'contactor' END AS label,
               (r BETWEEN 90 AND 96)::INTEGER AS objects_found,
               20.0 + (i % 37) AS total_time_ms, 8.0 + (i % 11) AS inference_ms,
               'model-1' AS model_id, NULL AS image_ref, at_us
        FROM (SELECT i, {now_us - SPAN_US} + i * {step} AS at_us, hash(i * 7919) % 100 AS r,
                     {_UUID7} AS h
              FROM range({rows}) t(i))
    """)
    filled = time.perf_counter() - t0
    t1 = time.perf_counter()
    con.execute("""INSERT INTO detections SELECT id, label, confidence, 100, 80, 240, 160, NULL
                   FROM inspections WHERE decision = 'fail'""")
    con.execute("CHECKPOINT")
    return {"inspections_s": round(filled, 1), "detections_s": round(time.perf_counter() - t1, 1)}


def bare_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE bare AS SELECT at_us, station_id, decision::VARCHAR AS decision,
                   label, total_time_ms FROM inspections ORDER BY at_us""")
    con.execute("CHECKPOINT")


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    fn()  # the first run of a query pays for loading its columns; not what a user waits on
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2),
            "p90_ms": round(times[min(len(times) - 1, int(len(times) * 0.9))], 2)}


def baseline(con: duckdb.DuckDBPyConnection, since: int, station: str | None,
             width: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    where = "WHERE at_us >= ?" + (" AND station_id = ?" if station else "")
    params: list[object] = [since, *([station] if station else [])]

    def stats() -> Any:
        con.execute(f"SELECT count(*), count_if(decision = 'pass'), count_if(decision = 'fail'),"
                    f" count_if(decision = 'uncertain'), avg(total_time_ms) FROM bare {where}",
                    params).fetchall()
        con.execute(f"SELECT label, count(*) FROM bare {where} AND decision = 'fail' "
                    "GROUP BY label", params).fetchall()

    def trend() -> Any:
        con.execute(f"SELECT at_us // {width}, count(*), count_if(decision = 'pass'), "
                    f"count_if(decision = 'fail'), count_if(decision = 'uncertain') "
                    f"FROM bare {where} GROUP BY 1", params).fetchall()

    return stats, trend


def main() -> None:
    args = parse_args(__doc__, [("--rows", {"type": int, "help": "inspections to store"})])
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    runs = 7 if args.quick else 15
    now = (time.time_ns() // 1000 // HOUR_US) * HOUR_US + HOUR_US // 2
    cases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="takt-bench-inspection-stats-") as tmp:
        database = open_database(Path(tmp) / "takt.duckdb")
        con = database.cursor()
        fill_s = fill(con, rows, now)
        bare_table(con)
        runtime = Runtime()
        query = QueryActor.start(runtime, "query:0", database)
        try:
            for hours in (24, 168):
                since = now - hours * HOUR_US
                for station in (None, "station-1"):
                    key = f"{hours}h_{station or 'all'}"
                    flt: dict[str, Any] = {"since_us": since, "station_id": station}
                    b_stats, b_trend = baseline(con, since, station, HOUR_US)
                    cases[key] = {
                        "rows_in_window": con.execute(
                            "SELECT count(*) FROM bare WHERE at_us >= ?"
                            + (" AND station_id = ?" if station else ""),
                            [since, *([station] if station else [])]).fetchall()[0][0],
                        "statistics_via_query_actor": timed(
                            lambda f=flt: call(runtime, query, InspectionStats(**f),
                                               timeout=30), runs),
                        "trends_hour_via_query_actor": timed(
                            lambda f=flt: call(runtime, query, InspectionTrend(
                                since_us=f["since_us"], until_us=now, interval="hour",
                                station_id=f["station_id"]), timeout=30), runs),
                        "trends_day_via_query_actor": timed(
                            lambda f=flt: call(runtime, query, InspectionTrend(
                                since_us=f["since_us"], until_us=now, interval="day",
                                station_id=f["station_id"]), timeout=30), runs),
                        "statistics_on_cursor": timed(
                            lambda f=flt: inspection_statistics(con, **f), runs),
                        "trends_hour_on_cursor": timed(
                            lambda f=flt: inspection_trends(
                                con, since_us=f["since_us"], until_us=now, interval="hour",
                                station_id=f["station_id"]), runs),
                        "baseline_statistics_bare_sql": timed(b_stats, runs),
                        "baseline_trends_bare_sql": timed(b_trend, runs),
                    }
                    c = cases[key]
                    c["statistics_vs_baseline"] = round(
                        c["statistics_via_query_actor"]["median_ms"]
                        / c["baseline_statistics_bare_sql"]["median_ms"], 2)
                    c["trends_vs_baseline"] = round(
                        c["trends_hour_via_query_actor"]["median_ms"]
                        / c["baseline_trends_bare_sql"]["median_ms"], 2)
            whole_stats, whole_trend = baseline(con, 0, None, 24 * HOUR_US)
            diagnostic = {
                "whole_table_statistics_on_cursor": timed(
                    lambda: inspection_statistics(con, since_us=0), max(3, runs // 3)),
                "whole_table_trends_day_on_cursor": timed(
                    lambda: inspection_trends(con, since_us=now - SPAN_US, until_us=now,
                                              interval="day"), max(3, runs // 3)),
                "whole_table_baseline_statistics": timed(whole_stats, max(3, runs // 3)),
                "whole_table_baseline_trends_day": timed(whole_trend, max(3, runs // 3)),
            }
            some_id = str(con.execute("SELECT id FROM inspections USING SAMPLE 1 ROWS"
                                      ).fetchall()[0][0])
            diagnostic["get_by_id_via_query_actor"] = timed(
                lambda: call(runtime, query, GetInspection(id=some_id), timeout=30), runs)
            diagnostic["get_by_id_on_cursor"] = timed(lambda: get_inspection(con, some_id), runs)
            diagnostic["newest_page_of_50_on_cursor"] = timed(
                lambda: list_inspections(con, InspectionFilter(), limit=50), runs)
        finally:
            query.stop()
            con.close()
            database.close()

    budgeted = [c[k]["median_ms"] for c in cases.values()
                for k in ("statistics_via_query_actor", "trends_hour_via_query_actor",
                          "trends_day_via_query_actor")]
    emit({
        "bench": "inspection_stats",
        "quick": args.quick,
        "rows": rows,
        "span_days": 30,
        "fill_s": fill_s,
        "runs_per_figure": runs,
        "cases": cases,
        "diagnostic": diagnostic,
        "worst_budgeted_median_ms": max(budgeted),
        "budget": f"statistics and trends <= {BUDGET_MS:.0f} ms each (median, via the query "
                  "actor) at 24 h and 168 h, no cache",
        "budget_ms": BUDGET_MS,
        "within_budget": max(budgeted) <= BUDGET_MS,
        "machine": machine(),
    })


if __name__ == "__main__":
    main()

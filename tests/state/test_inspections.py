"""The inspection store (migration 0012): rows through group commit, reads, statistics and
trends against a recount, export paging, the model registry, alerts, jobs, active learning."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.batch import WriteBatch, commit_batch
from state.connection import open_database
from state.errors import ConstraintError, NotFound, TransitionError
from state.inspection_alerts import (
    AlertFilter,
    acknowledge_alert,
    active_alert_kinds,
    clear_alert,
    list_alerts,
    raise_alert,
)
from state.inspection_jobs import (
    ActiveLearningRow,
    Annotation,
    active_learning_stats,
    annotate,
    create_job,
    fail_interrupted_jobs,
    finish_job,
    get_job,
    job_progress,
    labeled_items,
    mark_trained,
    pending_items,
    start_job,
)
from state.inspections import (
    DetectionRow,
    InspectionFilter,
    InspectionRow,
    count_inspections,
    delete_inspection,
    export_page,
    get_inspection,
    inspection_id,
    inspection_statistics,
    inspection_trends,
    list_inspections,
    parse_id,
)
from state.vision_models import active_model, deploy_model, get_model, list_models, register_model

HOUR = 3_600_000_000
T0 = 1_800_000_000_000_000 - (1_800_000_000_000_000 % (24 * HOUR))  # a UTC midnight


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    database = open_database(tmp_path / "takt.duckdb")
    yield database
    database.close()


def _row(at_us: int, *, decision: str = "pass", label: str = "screws_tight",
         station: str = "s1", time_ms: float = 20.0, image: str | None = None) -> InspectionRow:
    return InspectionRow(id=inspection_id(at_us), station_id=station, camera=None, part_id="P1",
                         source="upload", decision=decision, confidence=0.9, label=label,
                         objects_found=int(decision == "fail"), total_time_ms=time_ms,
                         inference_ms=time_ms / 2, model_id="m1", image_ref=image, at_us=at_us)


def _write(con: duckdb.DuckDBPyConnection, *rows: object) -> None:
    batch = WriteBatch()
    batch.extend(rows)  # type: ignore[arg-type]
    commit_batch(con, batch)


def _detection(row: InspectionRow, confidence: float = 0.9) -> DetectionRow:
    return DetectionRow(inspection_id=row.id, class_name=row.label, confidence=confidence,
                        x1=1, y1=2, x2=11, y2=22, area_mm2=None)


def test_an_inspection_is_read_back_with_its_detections(con: duckdb.DuckDBPyConnection) -> None:
    row = _row(T0, decision="fail", label="scratch")
    other = _row(T0 + 1)
    _write(con, row, other, _detection(row, 0.7), _detection(row, 0.95), _detection(other))
    stored = get_inspection(con, row.id)
    assert stored is not None
    assert stored.inspection == row
    assert [d.confidence for d in stored.detections] == [0.95, 0.7]  # most confident first
    assert get_inspection(con, str(uuid.uuid4())) is None
    assert get_inspection(con, "not-a-uuid") is None
    assert get_inspection(con, row.id.upper()) is not None  # any spelling of the UUID


def test_a_row_that_breaks_the_schema_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    bad = _row(T0, decision="maybe")
    with pytest.raises(ConstraintError):
        _write(con, bad)
    assert count_inspections(con) == 0


def test_ids_rise_with_time_and_are_uuid7() -> None:
    times = sorted(random.Random(1).randrange(T0, T0 + 10**9) for _ in range(2000))
    ids = [inspection_id(t) for t in times]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    # Same-millisecond ids sort by their sub-ms part; only equal microseconds may tie.
    ordered = sorted(range(len(ids)), key=lambda k: ids[k])
    assert [times[k] // 1000 for k in ordered] == [t // 1000 for t in times]
    assert parse_id(ids[0].upper()) == ids[0]
    assert parse_id("nope") is None


def test_list_filters_pages_and_orders_newest_first(con: duckdb.DuckDBPyConnection) -> None:
    rows = [_row(T0 + i, decision=("pass", "fail", "uncertain")[i % 3],
                 station=("s1", "s2")[i % 2]) for i in range(30)]
    _write(con, *rows, *(_detection(r) for r in rows))
    page = list_inspections(con, InspectionFilter(), limit=10, offset=0)
    assert [p.inspection.id for p in page] == [r.id for r in reversed(rows)][:10]
    assert all(len(p.detections) == 1 for p in page)
    second = list_inspections(con, InspectionFilter(), limit=10, offset=10)
    assert [p.inspection.id for p in second] == [r.id for r in reversed(rows)][10:20]
    fails_s1 = list_inspections(con, InspectionFilter(station_id="s1", decision="fail"),
                                limit=100)
    expected = [r.id for r in reversed(rows) if r.station_id == "s1" and r.decision == "fail"]
    assert [p.inspection.id for p in fails_s1] == expected
    assert count_inspections(con, InspectionFilter(decision="fail")) == 10


def test_delete_removes_detections_and_queue_entry(con: duckdb.DuckDBPyConnection) -> None:
    row = _row(T0, decision="uncertain", image="inspections/x.png")
    keep = _row(T0 + 5)
    entry = ActiveLearningRow(id=str(uuid.uuid4()), inspection_id=row.id,
                              image_ref="inspections/x.png", reason="uncertain",
                              status="pending", annotations=None, reviewed_by=None,
                              reviewed_us=None, at_us=T0)
    _write(con, row, keep, _detection(row), _detection(keep), entry)
    deleted = delete_inspection(con, row.id)
    assert deleted is not None and deleted.image_ref == "inspections/x.png"
    assert get_inspection(con, row.id) is None
    assert delete_inspection(con, row.id) is None
    assert con.execute("SELECT count(*) FROM detections").fetchall() == [(1,)]
    assert active_learning_stats(con) == {"pending": 0, "labeled": 0, "trained": 0}
    stored = get_inspection(con, keep.id)
    assert stored is not None and len(stored.detections) == 1


decisions = st.lists(
    st.tuples(st.sampled_from(["pass", "fail", "uncertain"]),
              st.sampled_from(["screws_tight", "scratch", "misplaced", "missing_screw"]),
              st.sampled_from(["s1", "s2"]),
              st.integers(0, 72 * HOUR - 1),
              st.floats(0.5, 500, allow_nan=False)),
    max_size=60)


@given(decisions, st.integers(1, 72), st.sampled_from([None, "s1", "s2"]),
       st.sampled_from(["hour", "day"]))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_statistics_and_trends_equal_a_recount(con: duckdb.DuckDBPyConnection,
                                               data: list[tuple[str, str, str, int, float]],
                                               hours: int, station: str | None,
                                               interval: str) -> None:
    con.execute("DELETE FROM inspections")
    rows = [_row(T0 + offset, decision=d, label=label, station=s, time_ms=ms)
            for d, label, s, offset, ms in sorted(data, key=lambda x: x[3])]
    if rows:
        _write(con, *rows)
    now = T0 + 72 * HOUR
    since = now - hours * HOUR
    stats = inspection_statistics(con, since_us=since, station_id=station)
    chosen = [r for r in rows if r.at_us >= since and station in (None, r.station_id)]
    counts = Counter(r.decision for r in chosen)
    assert stats.total_inspections == len(chosen)
    assert (stats.passed, stats.failed, stats.uncertain) == (
        counts["pass"], counts["fail"], counts["uncertain"])
    if chosen:
        assert stats.pass_rate == pytest.approx(counts["pass"] / len(chosen))
        assert stats.avg_inspection_time_ms == pytest.approx(
            sum(r.total_time_ms for r in chosen) / len(chosen))
    else:
        assert stats.pass_rate is None and stats.avg_inspection_time_ms is None
    assert stats.defect_breakdown == dict(Counter(r.label for r in chosen
                                                  if r.decision == "fail"))

    trends = inspection_trends(con, since_us=since, until_us=now, interval=interval,  # type: ignore[arg-type]
                               station_id=station)
    width = HOUR if interval == "hour" else 24 * HOUR
    first = since // width
    assert len(trends.labels) == now // width - first + 1
    assert len(trends.total) == len(trends.passed) == len(trends.failed) == len(trends.labels)
    in_buckets = [r for r in rows if r.at_us >= first * width
                  and station in (None, r.station_id)]
    for i in range(len(trends.labels)):
        bucket = [r for r in in_buckets if r.at_us // width == first + i]
        assert trends.total[i] == len(bucket)
        assert trends.passed[i] == sum(r.decision == "pass" for r in bucket)
        assert trends.failed[i] == sum(r.decision == "fail" for r in bucket)
        assert trends.uncertain[i] == sum(r.decision == "uncertain" for r in bucket)


def test_trend_labels_are_utc_bucket_starts(con: duckdb.DuckDBPyConnection) -> None:
    trends = inspection_trends(con, since_us=T0 + HOUR + 5, until_us=T0 + 3 * HOUR,
                               interval="hour")
    assert trends.labels == ["2027-01-15 01:00:00", "2027-01-15 02:00:00",
                             "2027-01-15 03:00:00"]
    assert trends.total == [0, 0, 0]


def test_export_pages_walk_every_row_once_in_order(con: duckdb.DuckDBPyConnection) -> None:
    # Several rows share a microsecond: the key must still move past each exactly once.
    rows = [_row(T0 + i // 3) for i in range(50)]
    _write(con, *rows)
    seen: list[str] = []
    after = None
    while page := export_page(con, after=after, limit=7):
        seen += [r.id for r in page]
        after = (page[-1].at_us, page[-1].id)
    assert sorted(seen) == sorted(r.id for r in rows)
    assert len(seen) == len(set(seen))
    stamps = [get_inspection(con, i).inspection.at_us for i in seen]  # type: ignore[union-attr]
    assert stamps == sorted(stamps)


# ---- the model registry -------------------------------------------------------------------


def test_models_get_versions_and_deploy_remembers_the_previous(
        con: duckdb.DuckDBPyConnection) -> None:
    a = register_model(con, name="contactor", path="/m/a.xml", labels=["x", "y"], kind="ir",
                       source="imported", metrics=None, now_us=1)
    b = register_model(con, name="contactor", path="/m/b.xml", labels=["x", "y"], kind="ir",
                       source="trained", metrics={"accuracy": 0.97}, now_us=2)
    other = register_model(con, name="other", path="/m/o.onnx", labels=["z"], kind="onnx",
                           source="imported", metrics=None, now_us=3)
    assert (a.version, b.version, other.version) == (1, 2, 1)
    assert b.metrics == {"accuracy": 0.97}
    assert active_model(con) is None
    deploy_model(con, a.id, now_us=10)
    deployed = deploy_model(con, b.id, now_us=20)
    assert deployed.active and deployed.previous_id == a.id and deployed.deployed_at_us == 20
    assert active_model(con) == deployed
    assert [m.id for m in list_models(con) if m.active] == [b.id]
    back = deploy_model(con, a.id, now_us=30, rollback=True)
    assert back.active and back.previous_id is None
    assert get_model(con, b.id).previous_id == a.id  # type: ignore[union-attr]
    assert deploy_model(con, a.id, now_us=40).previous_id is None  # redeploying itself
    with pytest.raises(NotFound):
        deploy_model(con, "nope", now_us=50)
    assert active_model(con).id == a.id  # type: ignore[union-attr]


# ---- alerts, batch jobs, active learning ----------------------------------------------------


def test_alerts_raise_clear_filter_and_acknowledge(con: duckdb.DuckDBPyConnection) -> None:
    rate = raise_alert(con, kind="pass_rate", severity="warning", title="Pass rate",
                       message="low", now_us=1)
    streak = raise_alert(con, kind="consecutive_fails", severity="error", title="Fails",
                         message="5 in a row", now_us=2)
    assert active_alert_kinds(con) == {"pass_rate", "consecutive_fails"}
    assert clear_alert(con, "pass_rate", now_us=3) == [rate.id]
    assert active_alert_kinds(con) == {"consecutive_fails"}
    assert [a.id for a in list_alerts(con, AlertFilter(), limit=10)] == [streak.id, rate.id]
    assert [a.id for a in list_alerts(con, AlertFilter(severity="error"), limit=10)] == [
        streak.id]
    done = acknowledge_alert(con, rate.id, by="eng", now_us=4)
    assert done.acknowledged and done.acknowledged_by == "eng"
    assert [a.id for a in list_alerts(con, AlertFilter(acknowledged=False), limit=10)] == [
        streak.id]
    with pytest.raises(TransitionError):
        acknowledge_alert(con, rate.id, by="eng", now_us=5)
    with pytest.raises(NotFound):
        acknowledge_alert(con, "nope", by="eng", now_us=5)


def test_batch_job_states(con: duckdb.DuckDBPyConnection) -> None:
    job = create_job(con, name="Shift A", input_dir="/x", file_pattern="*.png", part_id=None,
                     now_us=1)
    assert job.status == "pending"
    with pytest.raises(TransitionError):
        finish_job(con, job.id, status="completed", now_us=2)
    running = start_job(con, job.id, total=10, now_us=2)
    assert (running.status, running.total) == ("running", 10)
    with pytest.raises(TransitionError):
        start_job(con, job.id, total=10, now_us=3)
    job_progress(con, job.id, done=4, failed=1)
    assert (get_job(con, job.id).done, get_job(con, job.id).failed) == (4, 1)  # type: ignore[union-attr]
    done = finish_job(con, job.id, status="cancelled", now_us=5)
    assert done.status == "cancelled" and done.finished_us == 5
    with pytest.raises(TransitionError):
        finish_job(con, job.id, status="completed", now_us=6)
    other = create_job(con, name="B", input_dir="/y", file_pattern="*", part_id="P",
                       now_us=7)
    start_job(con, other.id, total=1, now_us=8)
    assert fail_interrupted_jobs(con, now_us=9) == 1
    assert get_job(con, other.id).status == "failed"  # type: ignore[union-attr]


def test_active_learning_queue(con: duckdb.DuckDBPyConnection) -> None:
    rows = [_row(T0 + i, decision="uncertain") for i in range(3)]
    entries = [ActiveLearningRow(id=str(uuid.uuid4()), inspection_id=r.id,
                                 image_ref=f"inspections/{i}.png", reason="uncertain",
                                 status="pending", annotations=None, reviewed_by=None,
                                 reviewed_us=None, at_us=r.at_us) for i, r in enumerate(rows)]
    _write(con, *rows, *entries)
    assert active_learning_stats(con) == {"pending": 3, "labeled": 0, "trained": 0}
    assert [e.id for e in pending_items(con, limit=2)] == [entries[0].id, entries[1].id]
    labeled = annotate(con, entries[0].id, [Annotation(class_name="scratch", bbox=(1, 2, 3, 4))],
                       by="op1", now_us=5)
    assert labeled.status == "labeled" and labeled.reviewed_by == "op1"
    assert '"scratch"' in (labeled.annotations or "")
    assert active_learning_stats(con) == {"pending": 2, "labeled": 1, "trained": 0}
    assert [e.id for e in labeled_items(con)] == [entries[0].id]
    mark_trained(con, [entries[0].id])
    assert active_learning_stats(con) == {"pending": 2, "labeled": 0, "trained": 1}
    with pytest.raises(TransitionError):
        annotate(con, entries[0].id, [], by="op1", now_us=6)
    with pytest.raises(NotFound):
        annotate(con, "nope", [], by="op1", now_us=6)

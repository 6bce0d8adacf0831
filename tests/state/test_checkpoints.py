"""The store can always checkpoint: no cursor is left holding a half-read result (an open
transaction), which made every CHECKPOINT fail once anything had been written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from actors.runtime import call
from actors.store import Flush
from controller.boot import start_station
from controller.config import parse_config
from sim.openprotocol_controller import OpenProtocolControllerSim
from state._sql import first_row
from state.connection import open_database
from state.tightening import WrenchControls, load_controls, save_controls
from tests.waiting import wait_for


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_database(tmp_path / "takt.duckdb")
    yield connection
    connection.close()


def test_a_row_read_by_another_cursor_does_not_block_the_next_checkpoint(
        con: duckdb.DuckDBPyConnection) -> None:
    writer, reader, store = con.cursor(), con.cursor(), con.cursor()
    save_controls(writer, WrenchControls(wrench="w1"))
    store.execute("CHECKPOINT")
    assert load_controls(reader, "w1") is not None  # the reader goes idle after this read
    save_controls(writer, WrenchControls(wrench="w1", sequence_counter=2))
    store.execute("CHECKPOINT")  # raised "other write transactions active" with fetchone()


def test_the_station_flushes_after_a_tightening_that_counts_a_sequence(tmp_path: Path) -> None:
    with OpenProtocolControllerSim(port=0) as controller:
        config = parse_config(f"""
[station]
id = "w"
name = "w"
[[wrenches]]
name = "w1"
port = {controller.port}
default_pset = 1
  [[wrenches.psets]]
  number = 1
  torque_min_nm = 5.0
  torque_max_nm = 15.0
  torque_target_nm = 10.0
  batch_size = 4
""", "t.toml")
        station = start_station(config, tmp_path / "data")
        try:
            wait_for(lambda: controller.subscribers == 1)
            store = station.runtime.directory.get("store")
            call(station.runtime, store, Flush())
            controller.tighten(ok=True)
            con = station.database.cursor()
            wait_for(lambda: first_row(con.execute(
                "SELECT sequence_counter FROM wrench_controls")) == (1,))
            con.close()
            call(station.runtime, store, Flush())  # the low-battery flush must work now
        finally:
            station.stop()

"""/api/v1/cameras and /api/v1/camera on a real station: an emulated Basler (the pylon emulator
serving a test scene), a folder camera and a Basler that is not there (DOWN: 503). Captures
are the scene, the MJPEG stream is read part by part, settings are refused with the camera's
ranges or applied and still there after the station restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import trio

from api.app import create_app
from controller.boot import Station, start_station
from controller.config import parse_config
from tests.api.conftest import admin, bearer, eventually, login
from tests.drivers.test_pylon_camera import scene_image, write_image

# See tests/drivers/test_pylon_camera.py: the emulator's SIGALRM timers and pytest-timeout.
pytestmark = pytest.mark.timeout(120, method="thread")

STATION = """
[station]
id = "cams"
name = "Camera test station"

[[cameras]]
name = "top"
emulation = true
serial = "0815-0000"
device_user_name = "RAP_CAM_01"
image_path = "{scene}"

[[cameras]]
name = "bench"
source = "folder"
image_path = "{folder}"
frame_rate = 20.0

[[cameras]]
name = "ghost"
device_user_name = "RAP_CAM_99"
"""


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    image = scene_image(seed=5)
    return write_image(tmp_path / "scene.png", image), image


def _config(tmp_path: Path, scene: Path) -> Any:
    folder = tmp_path / "bench"
    folder.mkdir(exist_ok=True)
    write_image(folder / "a.png", scene_image(200, 200, seed=9))
    return parse_config(STATION.format(scene=scene, folder=folder), "cams.toml")


@pytest.fixture
def station(tmp_path: Path, scene: tuple[Path, np.ndarray]) -> Iterator[Station]:
    st = start_station(_config(tmp_path, scene[0]), tmp_path / "data")
    yield st
    st.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    async with app.test_app() as test_app:
        yield test_app.test_client()


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return bgr[:, :, ::-1]


async def _grabbing(client: Any, auth: dict[str, str], name: str = "top") -> Any:
    async def status() -> Any:
        entries = await (await client.get("/api/v1/cameras", headers=auth)).get_json()
        entry = next(e for e in entries if e["name"] == name)
        return entry if entry["status"] and entry["status"]["frames"] > 0 else None

    return await eventually(status, timeout=20)


async def test_cameras_are_listed_and_the_active_one_captures_the_scene(
        client: Any, station: Station, scene: tuple[Path, np.ndarray]) -> None:
    auth = await admin(client, station)
    top = await _grabbing(client, auth)
    assert (top["active"], top["state"], top["status"]["model"], top["status"]["serial"]) == (
        True, "UP", "Emulation", "0815-0000")
    names = await (await client.get("/api/v1/cameras/device-user-names", headers=auth)).get_json()
    assert names == ["RAP_CAM_01", "RAP_CAM_99"]
    active = await (await client.get("/api/v1/cameras/active", headers=auth)).get_json()
    assert active == {"camera": "top", "device_user_name": "RAP_CAM_01"}

    r = await client.get("/api/v1/camera/capture?format=png", headers=auth)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert np.array_equal(decode(await r.get_data()), scene[1][:896, :896])
    r = await client.get("/api/v1/cameras/RAP_CAM_01/capture", headers=auth)  # by user name
    assert r.headers["Content-Type"] == "image/jpeg" and r.headers["X-Takt-Frame-Id"]
    jpeg = decode(await r.get_data())
    assert jpeg.shape == (896, 896, 3)
    assert np.abs(jpeg.astype(int) - scene[1][:896, :896].astype(int)).mean() < 4

    r = await client.put("/api/v1/cameras/active", headers=auth, json={"camera": "bench"})
    assert r.status_code == 200
    await _grabbing(client, auth, "bench")
    r = await client.get("/api/v1/camera/capture?format=png&width=100&height=100",
                         headers=auth)
    assert decode(await r.get_data()).shape == (100, 100, 3)
    assert (await (await client.get("/api/v1/cameras/active", headers=auth)).get_json())[
        "camera"] == "bench"

    assert (await client.get("/api/v1/cameras/nope/capture", headers=auth)).status_code == 404
    assert (await client.get("/api/v1/cameras/nope/config", headers=auth)).status_code == 404


async def test_a_camera_that_is_down_answers_503_and_the_others_their_features(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    entries = await (await client.get("/api/v1/cameras", headers=auth)).get_json()
    ghost = next(e for e in entries if e["name"] == "ghost")
    assert ghost["state"] in ("DOWN", "RESET", "UNKNOWN") and ghost["status"] is None
    for method, path in (("GET", "capture"), ("POST", "auto-adjust"), ("GET", "stream"),
                         ("POST", "stream/pause")):
        r = await client.open(f"/api/v1/cameras/ghost/{path}", method=method, headers=auth)
        assert r.status_code == 503, path
        body = await r.get_json()
        assert r.headers["Retry-After"] and "RAP_CAM_99" in body["detail"], body

    await _grabbing(client, auth)
    r = await client.post("/api/v1/cameras/top/auto-adjust", headers=auth)
    assert (await r.get_json())["set"] == {"ExposureAuto": "Once", "GainAuto": "Once"}
    r = await client.post("/api/v1/cameras/top/auto-focus", headers=auth)
    assert r.status_code == 409 and "not supported by this camera" in (await r.get_json())[
        "detail"]
    r = await client.post("/api/v1/cameras/bench/auto-adjust", headers=auth)
    assert r.status_code == 409


async def test_settings_are_refused_with_ranges_or_applied_and_survive_a_restart(
        client: Any, station: Station, tmp_path: Path, scene: tuple[Path, np.ndarray]) -> None:
    auth = await admin(client, station)
    await _grabbing(client, auth)
    before = await (await client.get("/api/v1/cameras/top/config", headers=auth)).get_json()
    assert before["device"]["width"] == 896 and before["ranges"]["width"] == "1..4096"

    r = await client.patch("/api/v1/cameras/top/config", headers=auth,
                           json={"Width": 5000, "ReverseX": 1})
    assert r.status_code == 422
    problem = await r.get_json()
    assert problem["errors"] == [{"field": "Width",
                                  "message": "5000 is outside the camera's range 1..4096"}]
    assert problem["ranges"] == {"Width": "1..4096"}
    r = await client.patch("/api/v1/cameras/top/config", headers=auth,
                           json={"Widht": 5, "Gain": 500, "PixelFormat": "YUV"})
    fields = {e["field"]: e["message"] for e in (await r.get_json())["errors"]}
    assert r.status_code == 422 and set(fields) == {"Widht", "Gain"}
    assert "did you mean 'Width'" in fields["Widht"] and "<= 100" in fields["Gain"]
    after = await (await client.get("/api/v1/cameras/top/config", headers=auth)).get_json()
    assert after["device"] == before["device"] and after["config"] == before["config"]

    r = await client.patch("/api/v1/cameras/top/config", headers=auth,
                           json={"Width": 640, "OffsetX": 16, "ReverseY": 1,
                                 "AcquisitionFrameRate": 20, "MaxGain": 12})
    assert r.status_code == 200, await r.get_json()
    changed = await r.get_json()
    # Taken live: the camera was not reopened for it (no gap in its stream).
    assert changed["applied"]["kept"] == ["camera:top", "camera:bench", "camera:ghost"]
    assert changed["applied"]["started"] == changed["applied"]["stopped"] == []
    assert (changed["device"]["width"], changed["device"]["offset_x"],
            changed["config"]["reverse_y"], changed["config"]["max_gain_db"]) == (
        640, 16, True, 12.0)
    # 640 wide from x = 16, mirrored top to bottom, centre-cropped to square, then resized.
    expected = cv2.resize(scene[1][:896, 16:656][::-1][128:768], (896, 896),
                          interpolation=cv2.INTER_AREA)

    async def shows_it() -> bool:
        # The newest frame may still be one grabbed before the change.
        r = await client.get("/api/v1/cameras/top/capture?format=png", headers=auth)
        return r.status_code == 200 and bool(
            np.abs(decode(await r.get_data()).astype(int) - expected.astype(int)).mean() < 1)

    await eventually(shows_it)
    r = await client.put("/api/v1/cameras/top/max-exposure", headers=auth,
                         json={"max_exposure_time": 20000})
    assert (await r.get_json())["config"]["max_exposure_us"] == 20000
    r = await client.put("/api/v1/cameras/top/max-gain", headers=auth, json={"max_gain": 480})
    assert r.status_code == 422

    password = station.admin_password or ""  # printed once, at the first start
    station.stop()  # the same station again, from its file and its stored overrides
    again = start_station(_config(tmp_path, scene[0]), tmp_path / "data")
    try:
        app = create_app(again.runtime, again.config, again.token_secret)
        async with app.test_app() as test_app:
            client2 = test_app.test_client()
            auth2 = bearer(await login(client2, "admin", password))
            await _grabbing(client2, auth2)
            view = await (await client2.get("/api/v1/cameras/top/config",
                                            headers=auth2)).get_json()
            assert (view["device"]["width"], view["device"]["offset_x"],
                    view["device"]["reverse_y"], view["device"]["frame_rate"],
                    view["device"]["max_gain_db"], view["device"]["max_exposure_us"]) == (
                640, 16, True, 20.0, 12.0, 20000)
            r = await client2.get("/api/v1/cameras/max-exposure", headers=auth2)
            assert {e["camera"]: e["max_exposure_time"] for e in await r.get_json()} == {
                "top": 20000, "bench": None, "ghost": None}
    finally:
        again.stop()


async def test_a_stored_setting_is_taken_live_and_an_identity_change_reopens(
        client: Any, station: Station) -> None:
    """The cameras section changed through /api/v1/config: settings the camera takes live are
    applied to the running camera; what it was opened by (here auto_reconnect) reopens it,
    with every setting it had been told."""
    auth = await admin(client, station)
    await _grabbing(client, auth)
    await _grabbing(client, auth, "bench")

    async def cameras_with(**changes: dict[str, Any]) -> Any:
        entries = await (await client.get("/api/v1/cameras", headers=auth)).get_json()
        section = [{**e["config"], **changes.get(e["name"], {})} for e in entries]
        r = await client.put("/api/v1/config", headers=auth, json={"set": {"cameras": section}})
        assert r.status_code == 200, await r.get_json()
        return next(a for a in (await r.get_json())["applied"] if a["section"] == "cameras")

    applied = await cameras_with(top={"exposure_us": 12000, "jpeg_quality": 60},
                                 bench={"frame_rate": 10.0})
    assert (applied["started"], applied["stopped"]) == ([], [])
    top = await (await client.get("/api/v1/cameras/top/config", headers=auth)).get_json()
    assert (top["device"]["exposure_us"], top["config"]["jpeg_quality"]) == (12000, 60)
    bench = await (await client.get("/api/v1/cameras/bench/config", headers=auth)).get_json()
    assert bench["device"]["frame_rate"] == 10.0

    applied = await cameras_with(top={"auto_reconnect": False})
    assert (applied["started"], applied["stopped"]) == (["camera:top"], ["camera:top"])
    await _grabbing(client, auth)
    top = await (await client.get("/api/v1/cameras/top/config", headers=auth)).get_json()
    assert (top["device"]["exposure_us"], top["config"]["auto_reconnect"]) == (12000, False)


async def test_the_stream_is_mjpeg_and_pauses(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    await _grabbing(client, auth)
    token = auth["Authorization"].split()[1]
    # The test client waits on a cancelled stream for an end that never comes: leaving this
    # scope cancelled stops the viewer, as a browser closing its connection would.
    with trio.CancelScope() as viewer:
        async with client.request(f"/api/v1/camera/stream?fps=15&token={token}") as conn:
            await conn.send_complete()
            reader = Parts(conn)
            parts = await reader.next(3)
            assert conn.status_code == 200
            assert conn.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            seqs = [_seq(headers) for headers, _ in parts]
            assert seqs == sorted(set(seqs))  # each part a newer frame
            for headers, jpeg in parts:
                assert headers["Content-Type"] == "image/jpeg"
                assert decode(jpeg).shape == (896, 896, 3)

            r = await client.post("/api/v1/camera/stream/pause", headers=auth)
            assert (await r.get_json()) == {"camera": "top", "streaming": False}
            slot = station.runtime.frames.slot("top")
            paused_at = slot.puts  # the newest frame when the pause took effect
            late: list[tuple[dict[str, str], bytes]] = []
            with trio.move_on_after(0.8):
                while True:  # what was already on its way before the pause
                    late += await reader.next(1)
            assert all(_seq(headers) <= paused_at for headers, _ in late)
            assert slot.puts > paused_at + 5  # the camera kept grabbing all along
            await client.post("/api/v1/camera/stream/resume", headers=auth)
            [(headers, _)] = await reader.next(1)
            assert _seq(headers) > paused_at
            viewer.cancel()
    unauthorized = await client.get("/api/v1/cameras/top/stream?token=nonsense")
    assert unauthorized.status_code == 401


def _seq(headers: dict[str, str]) -> int:
    return int(headers["X-Takt-Frame-Id"].rpartition(":")[2])


class Parts:
    """Reads a multipart/x-mixed-replace response part by part as it streams."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.data = b""

    async def next(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        parts = []
        while len(parts) < count:
            head_end = self.data.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = self.data[:head_end].decode().split("\r\n")
                assert lines[0] == "--frame"
                headers = dict(line.split(": ", 1) for line in lines[1:])
                end = head_end + 4 + int(headers["Content-Length"])
                if len(self.data) >= end + 2:
                    assert self.data[end:end + 2] == b"\r\n"
                    parts.append((headers, self.data[head_end + 4:end]))
                    self.data = self.data[end + 2:]
                    continue
            self.data += await self.conn.receive()
        return parts

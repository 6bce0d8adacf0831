"""Which config changes a running camera takes live and which reopen it: two configs with the
same reopen key differ only in settings the camera takes live (and in what only Takt reads),
and applying the live changes to the old config gives the new one."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from controller.camera_config import (
    LIVE_FIELDS,
    CameraConfig,
    CameraSource,
    ExposureAuto,
    live_changes,
    reopen_key,
)

OPENED_BY = {"source", "serial", "device_user_name", "emulation", "image_path",
             "capture_device", "auto_reconnect", "enabled", "name"}

configs = st.builds(
    CameraConfig,
    name=st.just("top"),
    source=st.sampled_from(list(CameraSource)),
    serial=st.sampled_from([None, "0815-0000", "0815-0001"]),
    auto_reconnect=st.booleans(),
    width=st.integers(16, 4096),
    offset_x=st.integers(0, 64),
    reverse_y=st.booleans(),
    exposure_auto=st.sampled_from(list(ExposureAuto)),
    exposure_us=st.none() | st.integers(20, 100_000),
    gain_db=st.none() | st.floats(0, 24),
    frame_rate=st.floats(1, 120),
    active=st.booleans(),
    jpeg_quality=st.integers(1, 100),
)


@given(configs, configs)
def test_the_same_key_means_only_live_differences(old: CameraConfig, new: CameraConfig) -> None:
    differ = {f for f in CameraConfig.__struct_fields__ if getattr(old, f) != getattr(new, f)}
    if reopen_key(old) == reopen_key(new):
        live = LIVE_FIELDS if new.source is CameraSource.PYLON else {"frame_rate"}
        assert differ <= live | {"active", "jpeg_quality"}
    else:
        assert differ & (OPENED_BY | LIVE_FIELDS)


@given(configs, configs)
def test_live_changes_bring_the_camera_to_the_new_config(old: CameraConfig,
                                                        new: CameraConfig) -> None:
    # The new config: the old one with whatever the camera takes live from another.
    live = LIVE_FIELDS if old.source is CameraSource.PYLON else {"frame_rate"}
    new = msgspec.structs.replace(old, **{f: getattr(new, f)
                                          for f in live | {"active", "jpeg_quality"}})
    assert reopen_key(old) == reopen_key(new)
    changes = live_changes(old, new)
    applied = msgspec.structs.replace(old, **changes, active=new.active,
                                      jpeg_quality=new.jpeg_quality)
    # What is None in the new config is "as the camera has it": the camera is left alone.
    left = {f for f in CameraConfig.__struct_fields__ if getattr(applied, f) != getattr(new, f)}
    assert all(getattr(new, f) is None for f in left), left
    assert all(getattr(old, f) != value for f, value in changes.items())


def test_a_folder_source_reopens_for_anything_but_its_frame_rate() -> None:
    folder = CameraConfig(name="bench", source=CameraSource.FOLDER, image_path="frames")
    assert reopen_key(folder) == reopen_key(msgspec.structs.replace(folder, frame_rate=5.0))
    assert reopen_key(folder) != reopen_key(msgspec.structs.replace(folder, width=640))
    pylon = CameraConfig(name="top")
    assert reopen_key(pylon) == reopen_key(msgspec.structs.replace(pylon, width=640))

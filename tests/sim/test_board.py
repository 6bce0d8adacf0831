"""The rendered fixture board: deterministic, each state visibly itself, defects only where
they belong, augmentations within their bounds, frames written atomically."""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.vision.board import (
    BODY_SIZE,
    HOME,
    LABELS,
    SIZE,
    TERMINALS,
    Scene,
    contactor_box,
    render,
    write_frame,
)
from sim.vision.camera import DEFAULT_AUGMENT, Augment
from sim.vision.dataset import iter_set, make_set, random_serial

NO_CHANGE = Augment(brightness=0, gradient=0, contrast=0, hue_deg=0, saturation=0,
                    white_balance=0, shift_px=0, rotate_deg=0, scale=0, jitter_px=0,
                    jitter_deg=0, noise=0, blur=0)


def canonical(state: str, **kw: object) -> np.ndarray:
    return render(Scene(state, **kw)).astype(np.int16)


def terminal_centre(i: int) -> tuple[int, int]:
    """A terminal's centre on the canonical frame, for a contactor at HOME."""
    tx, ty = TERMINALS[i]
    return (round(HOME[0] - BODY_SIZE[0] / 2 + tx), round(HOME[1] - BODY_SIZE[1] / 2 + ty))


def disc(shape: tuple[int, ...], centre: tuple[int, int], r: int) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= r * r


def box_mask(box: tuple[int, int, int, int], margin: int = 0) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    x1, y1, x2, y2 = box
    mask[max(0, y1 - margin):y2 + margin, max(0, x1 - margin):x2 + margin] = True
    return mask


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).max(axis=2) > 0


@pytest.mark.parametrize("state", LABELS)
def test_every_state_renders_an_896_rgb_frame(state: str) -> None:
    image = render(Scene(state))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


def test_renders_are_deterministic_by_seed() -> None:
    for state in ("scratch", "missing_screw", "misplaced"):
        a = render(Scene(state), np.random.default_rng(7), DEFAULT_AUGMENT)
        b = render(Scene(state), np.random.default_rng(7), DEFAULT_AUGMENT)
        c = render(Scene(state), np.random.default_rng(8), DEFAULT_AUGMENT)
        assert np.array_equal(a, b)
        assert np.abs(a.astype(int) - c).mean() > 1  # another seed, another frame
    assert np.array_equal(render(Scene("screws_tight")), render(Scene("screws_tight")))


def test_contactor_appears_on_the_rail_or_in_the_picking_zone_only() -> None:
    empty = canonical("empty_rail")
    for state in ("contactor", "contactor_on_rail"):
        frame = canonical(state)
        box = contactor_box(Scene(state))
        assert box is not None
        diff = changed(frame, empty)
        inside = box_mask(box)
        assert diff[inside].mean() > 0.9  # the part covers its box
        assert not diff[~box_mask(box, margin=40)].any()  # and nothing beyond its shadow
    on_rail = contactor_box(Scene("contactor_on_rail"))
    in_zone = contactor_box(Scene("contactor"))
    assert on_rail is not None and in_zone is not None
    assert on_rail[2] < in_zone[0]  # beside the rail, not on it
    assert contactor_box(Scene("empty_rail")) is None


def test_screws_change_only_the_terminals() -> None:
    open_holes, tight = canonical("contactor_on_rail"), canonical("screws_tight")
    terminals = np.zeros((SIZE, SIZE), bool)
    for i in range(len(TERMINALS)):
        terminals |= disc((SIZE, SIZE), terminal_centre(i), 32)
    diff = changed(open_holes, tight)
    assert diff.any() and not diff[~terminals].any()
    for i in range(len(TERMINALS)):
        centre = disc((SIZE, SIZE), terminal_centre(i), 12)
        assert open_holes[centre].mean() < 50  # an open, dark terminal hole
        assert tight[centre].mean() > 100  # a bright screw head


def test_missing_screws_are_the_ones_asked_for() -> None:
    frame = canonical("missing_screw", missing=(0, 3))
    for i, missing in enumerate((True, False, False, True)):
        level = frame[disc((SIZE, SIZE), terminal_centre(i), 12)].mean()
        assert (level < 50) if missing else (level > 100), (i, level)
    # Left to chance, one or two are missing, never none or all.
    for seed in range(12):
        frame = render(Scene("missing_screw"), np.random.default_rng(seed)).astype(np.int16)
        holes = sum(frame[disc((SIZE, SIZE), terminal_centre(i), 12)].mean() < 50
                    for i in range(len(TERMINALS)))
        assert holes in (1, 2)


def test_scratch_marks_only_the_contactor_face() -> None:
    tight, scratched = canonical("screws_tight"), canonical("scratch")
    box = contactor_box(Scene("scratch"))
    assert box is not None
    diff = changed(tight, scratched)
    assert not diff[~box_mask(box)].any()
    assert diff.sum() > 2000  # a visible gouge, not a hairline


def test_a_scratch_is_a_long_wide_gouge_clear_of_the_screws() -> None:
    terminals = np.zeros((SIZE, SIZE), bool)
    for i in range(len(TERMINALS)):
        terminals |= disc((SIZE, SIZE), terminal_centre(i), 32)
    for seed in range(12):
        # The same seed draws the same screw slots: the frames differ by the gouge alone.
        tight = render(Scene("screws_tight"), np.random.default_rng(seed)).astype(np.int16)
        scratched = render(Scene("scratch"), np.random.default_rng(seed)).astype(np.int16)
        gouge = changed(tight, scratched)
        assert not gouge[terminals].any(), seed  # never over a screw: not to be taken for one
        ys, xs = np.nonzero(gouge)
        assert xs.max() - xs.min() > 0.7 * BODY_SIZE[0]  # across the face
        assert ys.max() - ys.min() > 0.25 * BODY_SIZE[1]  # steeply, across the printed lines
        # About 26 px wide along its length: several times a screw slot or a printed stroke.
        assert gouge.sum() > 20 * math.hypot(xs.max() - xs.min(), ys.max() - ys.min())


def test_misplaced_contactor_is_off_its_position_or_tilted() -> None:
    home = contactor_box(Scene("contactor_on_rail"))
    shifted = contactor_box(Scene("misplaced"))
    assert home is not None and shifted is not None
    assert abs(shifted[0] - home[0]) >= 140
    tilted = contactor_box(Scene("misplaced", offset_px=(0.0, 0.0), tilt_deg=15.0))
    assert tilted is not None
    assert tilted[2] - tilted[0] > BODY_SIZE[0] + 80  # a tilted part's box is wider
    for seed in range(12):  # left to chance: shifted well off, tilted well over, or both
        a = render(Scene("misplaced"), np.random.default_rng(seed)).astype(np.int16)
        b = canonical("contactor_on_rail")
        assert changed(a, b)[box_mask(home)].mean() > 0.3


def test_printed_text_is_large_enough_to_read_and_follows_the_scene() -> None:
    frame = render(Scene("screws_tight", serial="CT-987654"))
    other = render(Scene("screws_tight", serial="CT-000001"))
    diff = changed(frame.astype(np.int16), other.astype(np.int16))
    ys, xs = np.nonzero(diff)
    # Only the label changed, and its glyphs are 30..40 px high, as OCR wants them.
    assert 30 <= ys.max() - ys.min() + 1 <= 40
    box = contactor_box(Scene("screws_tight"))
    assert box is not None and box[0] <= xs.min() and xs.max() <= box[2]
    for text, kw in (("32A", {"rating": "40A"}), ("24V DC", {"voltage": "230V AC"})):
        assert not np.array_equal(render(Scene("screws_tight", **kw)), frame), text


def test_scene_rejects_unknown_states_and_terminals() -> None:
    with pytest.raises(ValueError, match="unknown board state"):
        Scene("on_fire")
    with pytest.raises(ValueError, match="missing screws"):
        Scene("missing_screw", missing=(4,))


def test_augment_without_change_is_the_canonical_frame() -> None:
    for state in ("empty_rail", "contactor", "contactor_on_rail"):
        same = render(Scene(state), np.random.default_rng(3), NO_CHANGE)
        assert np.abs(same.astype(np.int16) - canonical(state)).max() <= 1


@given(seed=st.integers(0, 2**32 - 1), strength=st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_augment_draws_stay_within_their_bounds(seed: int, strength: float) -> None:
    aug = Augment.from_strengths(strength, strength, strength)
    draw = aug.sample(np.random.default_rng(seed))

    def within(value: float, bound: float) -> bool:  # 1 + x - 1 may differ from x by an ulp
        return abs(value) <= bound + 1e-12

    assert within(draw.gain - 1, aug.brightness)
    assert 0 <= draw.gradient <= aug.gradient
    assert within(draw.contrast - 1, aug.contrast)
    assert within(draw.hue_deg, aug.hue_deg)
    assert within(draw.saturation - 1, aug.saturation)
    assert all(within(g - 1, aug.white_balance) for g in draw.white_balance)
    assert all(within(s, aug.shift_px) for s in draw.shift)
    assert within(draw.rotate_deg, aug.rotate_deg) and within(draw.scale - 1, aug.scale)
    assert all(within(s, aug.jitter_px) for s in draw.part_shift)
    assert within(draw.part_deg, aug.jitter_deg)
    assert 0 <= draw.noise <= aug.noise and 0 <= draw.blur <= aug.blur


@given(seed=st.integers(0, 2**32 - 1), brightness=st.floats(0.0, 0.5))
@settings(max_examples=8, deadline=None)
def test_brightness_augmentation_moves_the_frame_mean_within_its_range(
        seed: int, brightness: float) -> None:
    only_light = Augment(brightness=brightness, gradient=0, contrast=0, hue_deg=0,
                         saturation=0, white_balance=0, shift_px=0, rotate_deg=0, scale=0,
                         jitter_px=0, jitter_deg=0, noise=0, blur=0)
    plain = render(Scene("contactor_on_rail")).mean()
    lit = render(Scene("contactor_on_rail"), np.random.default_rng(seed), only_light).mean()
    assert (1 - brightness) * plain - 1 <= lit <= (1 + brightness) * plain + 1


def test_augment_refuses_settings_that_would_fake_a_label() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Augment(jitter_px=100)
    with pytest.raises(ValueError, match="negative"):
        Augment(noise=-1)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Augment.from_strengths(1.5, 0, 0)


def test_augmented_frames_stay_recognisable() -> None:
    rng = np.random.default_rng(11)
    plain = canonical("contactor_on_rail")
    for _ in range(5):
        frame = render(Scene("contactor_on_rail"), rng, DEFAULT_AUGMENT).astype(np.int16)
        assert 60 < frame.mean() < 200
        # The frame moved by at most the shift, rotation, zoom and jitter allowed.
        corr = cv2.matchTemplate(cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2GRAY),
                                 cv2.cvtColor(plain[300:600, 150:500].astype(np.uint8),
                                              cv2.COLOR_RGB2GRAY), cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(corr)
        assert best > 0.5 and math.dist((x, y), (150, 300)) < 60


def test_write_frame_round_trips_through_cv2(tmp_path: Path) -> None:
    image = render(Scene("screws_tight"))
    for name in ("frame.png", "frame.bmp"):
        path = write_frame(tmp_path / name, image)
        back = cv2.imread(str(path))
        assert back is not None and np.array_equal(back[..., ::-1], image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.bmp", "frame.png"]


def test_write_frame_failure_leaves_the_old_frame(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "frame.png", render(Scene("empty_rail")))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        write_frame(tmp_path / "frame.png", np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r"cannot encode a frame as \.xyz"):
        write_frame(tmp_path / "frame.xyz", render(Scene("empty_rail")))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]  # no temp file left


def test_readers_never_see_a_half_written_frame(tmp_path: Path) -> None:
    frames = [render(Scene("empty_rail")), render(Scene("screws_tight"))]
    path = write_frame(tmp_path / "live.png", frames[0])
    stop = threading.Event()
    seen: list[int] = []
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            image = cv2.imread(str(path))
            if image is None:
                bad.append("undecodable")
                continue
            matches = [i for i, f in enumerate(frames) if np.array_equal(image[..., ::-1], f)]
            seen.extend(matches) if matches else bad.append("a mixture")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(30):
            write_frame(path, frames[k % 2])
    finally:
        stop.set()
        thread.join()
    assert not bad and seen


def test_make_set_is_balanced_labelled_and_deterministic() -> None:
    images, labels = make_set(2, seed=5, labels=("contactor", "scratch"), size=112)
    assert images.shape == (4, 112, 112, 3) and images.dtype == np.uint8
    assert labels == ["contactor", "scratch", "contactor", "scratch"]
    # The same frames however many threads render them, and from the streaming iter_set.
    again, _ = make_set(2, seed=5, labels=("contactor", "scratch"), size=112, workers=1)
    assert np.array_equal(images, again)
    streamed = [image for image, _ in iter_set(2, 5, ("contactor", "scratch"), size=112,
                                                workers=3)]
    assert np.array_equal(images, np.stack(streamed))
    with pytest.raises(ValueError, match="unknown labels"):
        make_set(1, seed=5, labels=("contactor", "exploded"))
    with pytest.raises(ValueError, match="workers"):
        make_set(1, seed=5, workers=0)


def test_sets_deal_out_every_way_screws_can_be_missing() -> None:
    images, _ = make_set(10, seed=3, labels=("missing_screw",), augment=None)
    patterns = set()
    for frame in images.astype(np.int16):
        patterns.add(tuple(i for i in range(len(TERMINALS))
                           if frame[disc((SIZE, SIZE), terminal_centre(i), 12)].mean() < 50))
    # All ten: one of four, or two of four, both of one terminal block among them.
    assert len(patterns) == 10 and all(len(p) in (1, 2) for p in patterns)


def test_sets_print_demo_serials_that_vary() -> None:
    rng = np.random.default_rng(1)
    serials = [random_serial(rng) for _ in range(20)]
    assert all(re.fullmatch(r"CT-\d{6}", serial) for serial in serials)
    assert len(set(serials)) > 15
    frames = [image for image, _ in iter_set(2, seed=9, labels=("screws_tight",), augment=None)]
    assert not np.array_equal(frames[0], frames[1])  # the same state, another label print

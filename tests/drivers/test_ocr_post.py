"""PP-OCR pre/post-processing without models: CTC decoding, detector sizing, DB boxes, order."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drivers.vision.ocr_post import (
    bounds,
    crop_rotated,
    ctc_decode,
    db_boxes,
    det_input,
    det_resize,
    order_boxes,
    rec_batch,
    rec_resize_width,
)

CHARSET = tuple("0123456789ABCDEFGHIJ-")  # class i is CHARSET[i - 1]; class 0 is the blank


# --- ctc_decode ------------------------------------------------------------------------------


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
                  elements=st.floats(width=32)),
       st.integers(0, 30))
def test_ctc_decode_never_raises_on_any_array(probs: np.ndarray, charset_len: int) -> None:
    text, confidence = ctc_decode(probs, CHARSET[:charset_len] + tuple("xyz" * 3))
    assert isinstance(text, str)
    assert math.isfinite(confidence)
    assert len(text) <= probs.shape[0]


def reference_decode(indices: list[int], charset: tuple[str, ...]) -> str:
    collapsed = [index for index, _ in itertools.groupby(indices)]
    return "".join(charset[i - 1] for i in collapsed if i != 0)


@given(st.lists(st.integers(0, len(CHARSET)), max_size=60),
       st.data())
def test_ctc_decode_collapses_repeats_and_drops_blanks(indices: list[int], data: st.DataObject
                                                       ) -> None:
    classes = len(CHARSET) + 1
    best = data.draw(st.lists(st.floats(0.5, 1.0), min_size=len(indices), max_size=len(indices)))
    probs = np.zeros((len(indices), classes), dtype=np.float32)
    for t, (index, p) in enumerate(zip(indices, best, strict=True)):
        probs[t, :] = (1.0 - p) / (classes - 1)
        probs[t, index] = p
    text, confidence = ctc_decode(probs, CHARSET)
    assert text == reference_decode(indices, CHARSET)
    kept = [p for t, (index, p) in enumerate(zip(indices, best, strict=True))
            if index != 0 and (t == 0 or indices[t - 1] != index)]
    assert confidence == pytest.approx(float(np.mean(np.float32(kept))) if kept else 0.0,
                                       abs=1e-6)


def test_ctc_decode_keeps_a_repeat_separated_by_a_blank() -> None:
    one_hot = np.eye(len(CHARSET) + 1, dtype=np.float32)
    zero, blank = one_hot[1], one_hot[0]
    assert ctc_decode(np.stack([zero, zero, blank, zero]), CHARSET) == ("00", 1.0)
    assert ctc_decode(np.stack([blank, blank]), CHARSET) == ("", 0.0)
    # A class the charset does not have shows as a replacement character, not a crash.
    assert ctc_decode(np.eye(30, dtype=np.float32)[[25]], CHARSET)[0] == "\ufffd"


def test_ctc_decode_refuses_an_array_that_is_not_t_by_c() -> None:
    with pytest.raises(ValueError, match="T x C"):
        ctc_decode(np.zeros((2, 3, 4), dtype=np.float32), CHARSET)


# --- det_resize / det_input ------------------------------------------------------------------


@given(st.integers(1, 12_000), st.integers(1, 12_000), st.integers(32, 4_000))
def test_det_resize_gives_multiples_of_32_within_the_limit(h: int, w: int, max_side: int
                                                           ) -> None:
    nh, nw = det_resize(h, w, max_side)
    assert nh % 32 == 0 and nw % 32 == 0
    assert 32 <= nh <= max_side and 32 <= nw <= max_side


@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 40))
def test_det_resize_keeps_a_size_that_already_fits(hs: int, ws: int, spare: int) -> None:
    h, w = hs * 32, ws * 32
    assert det_resize(h, w, max(h, w) + spare) == (h, w)


def test_det_resize_keeps_the_aspect_of_a_large_frame() -> None:
    assert det_resize(1080, 1920, 960) == (544, 960)
    assert det_resize(896, 896, 960) == (896, 896)
    with pytest.raises(ValueError, match="max_side"):
        det_resize(100, 100, 16)


def test_det_input_is_a_normalised_nchw_tensor() -> None:
    white = np.full((50, 70, 3), 255, dtype=np.uint8)
    tensor = det_input(white, (64, 96))
    assert tensor.shape == (1, 3, 64, 96) and tensor.dtype == np.float32
    assert tensor[0, :, 0, 0] == pytest.approx([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                (1 - 0.406) / 0.225], rel=1e-5)


# --- db_boxes --------------------------------------------------------------------------------


@st.composite
def separated_rectangles(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """A map size and up to 4 rectangles (x1, y1, x2, y2) in rows far enough apart that the
    grown boxes of two rectangles never merge."""
    rows = draw(st.integers(1, 4))
    rects, y = [], draw(st.integers(2, 20))
    for _ in range(rows):
        h = draw(st.integers(6, 24))
        x = draw(st.integers(2, 30))
        w = draw(st.integers(8, 120))
        rects.append((x, y, x + w, y + h))
        y += h + draw(st.integers(30, 50))
    return y + 10, 200, rects


@settings(max_examples=60, deadline=None)
@given(separated_rectangles(), st.sampled_from([1.0, 2.0, 0.5]), st.floats(0.7, 1.0))
def test_db_boxes_cover_each_text_region(layout: tuple[int, int, list[tuple[int, int, int, int]]],
                                         scale: float, level: float) -> None:
    map_h, map_w, rects = layout
    prob = np.zeros((map_h, map_w), dtype=np.float32)
    for x1, y1, x2, y2 in rects:
        prob[y1:y2, x1:x2] = level
    src_h, src_w = round(map_h * scale), round(map_w * scale)
    boxes = db_boxes(prob, src_h=src_h, src_w=src_w)
    assert len(boxes) == len(rects)
    for x1, y1, x2, y2 in rects:
        want = (x1 * scale, y1 * scale, min(x2 * scale, src_w - 1), min(y2 * scale, src_h - 1))
        covering = [b for b in boxes if _covers(bounds(b.points, src_h, src_w), want, scale)]
        assert len(covering) == 1, (want, [b.points.tolist() for b in boxes])
        assert covering[0].score == pytest.approx(level, abs=0.05)


def _covers(box: tuple[int, int, int, int], want: tuple[float, float, float, float],
            scale: float) -> bool:
    slack = 1.0 + scale  # rounding on the map, then scaling to the image
    return (box[0] <= want[0] + slack and box[1] <= want[1] + slack
            and box[2] >= want[2] - slack and box[3] >= want[3] - slack)


def test_db_boxes_find_nothing_on_an_empty_or_faint_map() -> None:
    assert db_boxes(np.zeros((96, 128), dtype=np.float32), src_h=96, src_w=128) == []
    faint = np.full((96, 128), 0.25, dtype=np.float32)
    assert db_boxes(faint, src_h=96, src_w=128) == []
    weak = np.zeros((96, 128), dtype=np.float32)
    weak[20:40, 10:90] = 0.5  # over the pixel threshold, under the box threshold
    assert db_boxes(weak, src_h=96, src_w=128) == []


def test_db_boxes_of_a_rotated_region_follow_its_slant() -> None:
    import cv2

    prob = np.zeros((200, 300), dtype=np.float32)
    quad = cv2.boxPoints(((150, 100), (180, 24), 10.0)).astype(np.int32)
    cv2.fillPoly(prob, [quad], 0.9)
    (box,) = db_boxes(prob, src_h=200, src_w=300)
    top = box.points[1] - box.points[0]
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(10.0, abs=2.0)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 64), st.integers(1, 64)),
                  elements=st.floats(width=32, allow_nan=True)))
def test_db_boxes_never_raise_on_any_map(prob: np.ndarray) -> None:
    for box in db_boxes(prob, src_h=100, src_w=80):
        assert box.points.shape == (4, 2)
        assert (box.points[:, 0] <= 79).all() and (box.points[:, 1] <= 99).all()


# --- order_boxes -----------------------------------------------------------------------------


def quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float32)


@given(st.lists(hnp.arrays(np.float64, (4, 2), elements=st.floats()), max_size=20))
def test_order_boxes_is_a_permutation(quads: list[np.ndarray]) -> None:
    order = order_boxes(quads)
    assert sorted(order) == list(range(len(quads)))


@st.composite
def rows_of_boxes(draw: st.DrawFn) -> list[list[np.ndarray]]:
    """Rows top to bottom, each a list of boxes left to right, all turned by the same few
    degrees (a slightly rotated frame) and a little uneven in height and position."""
    turn = math.radians(draw(st.floats(-4.0, 4.0)))
    along = np.array([math.cos(turn), math.sin(turn)])
    across = np.array([-math.sin(turn), math.cos(turn)])
    rows, t = [], draw(st.floats(0, 200))
    for _ in range(draw(st.integers(1, 5))):
        h = draw(st.floats(15, 60))
        s, row = draw(st.floats(0, 200)), []
        for _ in range(draw(st.integers(1, 5))):
            w, box_h = draw(st.floats(20, 300)), h * draw(st.floats(0.9, 1.1))
            top = t + draw(st.floats(-0.1, 0.1)) * h
            corners = [(s, top), (s + w, top), (s + w, top + box_h), (s, top + box_h)]
            row.append(np.array([a * along + b * across for a, b in corners]))
            s += w + draw(st.floats(5, 200))
        rows.append(row)
        t += 1.1 * h + draw(st.floats(10, 60))
    return rows


@given(rows_of_boxes(), st.randoms(use_true_random=False))
def test_order_boxes_reads_rows_top_down_and_each_row_left_to_right(
        rows: list[list[np.ndarray]], rnd: object) -> None:
    expected = [box for row in rows for box in row]
    shuffled = list(expected)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    order = order_boxes(shuffled)
    assert [shuffled[i].tolist() for i in order] == [box.tolist() for box in expected]


def test_order_boxes_puts_a_line_of_labels_before_the_next_line() -> None:
    # Two labels on one line with the right one a little higher than a label below-left.
    first, second, below = quad(0, 100, 200, 40), quad(600, 90, 200, 40), quad(0, 170, 200, 40)
    assert order_boxes([below, second, first]) == [2, 1, 0]


# --- crops -----------------------------------------------------------------------------------


@given(st.integers(0, 40), st.integers(0, 40), st.integers(8, 60), st.integers(4, 30))
def test_an_upright_box_crops_exactly_its_pixels(x: int, y: int, w: int, h: int) -> None:
    image = np.random.default_rng(x * 1000 + y).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    crop = crop_rotated(image, quad(x, y, w, h))
    if h / w >= 1.5:  # vertical text is turned to lie along the line
        crop = np.rot90(crop, -1)
    assert crop.shape == (h, w, 3)
    assert np.array_equal(crop, image[y:y + h, x:x + w])


@given(st.integers(1, 400), st.integers(1, 4000), st.integers(100, 2000))
def test_rec_resize_width_keeps_the_aspect_within_limits(h: int, w: int, max_w: int) -> None:
    width = rec_resize_width(h, w, max_w=max_w)
    assert 1 <= width <= max_w
    if math.ceil(48 * w / h) <= max_w:
        assert width == math.ceil(48 * w / h)


def test_rec_batch_pads_lines_to_a_common_width() -> None:
    short = np.full((30, 60, 3), 255, dtype=np.uint8)
    long = np.zeros((24, 500, 3), dtype=np.uint8)
    batch = rec_batch([short, long])
    assert batch.shape == (2, 3, 48, 1000)
    assert batch[0, :, :, :96].min() == pytest.approx(1.0)  # white -> +1
    assert batch[0, :, :, 96:].max() == 0.0  # the padding
    assert batch[1].min() == pytest.approx(-1.0)  # black -> -1
    assert rec_batch([short]).shape == (1, 3, 48, 320)  # short lines get the trained width

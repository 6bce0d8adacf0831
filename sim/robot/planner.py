"""Free space of a map and a path planner over it: pure geometry, no clock, no I/O.

The robot is a disc of radius r; obstacles are rectangles grown by r and the map edge is
pulled in by r, so the planner can treat the robot as a point. A straight segment that is
free is taken as is; otherwise A* runs on a coarse grid (cell centres as nodes, every edge
checked exactly against the grown rectangles) and the path is shortened by string pulling.
Every path point is free and every segment between them is free, so following the path
keeps the robot inside the map.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence

import msgspec

__all__ = ["Box", "FreeSpace", "Point", "wrap_angle"]

Point = tuple[float, float]

_NEIGHBOURS = tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy)


def wrap_angle(angle: float) -> float:
    """angle in radians wrapped to [-pi, pi); an angle already in range comes back exact."""
    if -math.pi <= angle < math.pi:
        return angle
    wrapped = (angle + math.pi) % (2.0 * math.pi) - math.pi
    return -math.pi if wrapped >= math.pi else wrapped  # rounding can land on +pi


class Box(msgspec.Struct, frozen=True):
    """An axis-aligned rectangle; the robot's centre may not enter its interior."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def grown(self, margin: float) -> Box:
        """The box enlarged by margin on every side."""
        return Box(
            self.x_min - margin, self.y_min - margin, self.x_max + margin, self.y_max + margin
        )

    def contains(self, p: Point) -> bool:
        """True if p is strictly inside (touching the edge is allowed)."""
        return self.x_min < p[0] < self.x_max and self.y_min < p[1] < self.y_max

    def crosses(self, a: Point, b: Point) -> bool:
        """True if the segment a-b passes through the interior (Liang-Barsky clipping)."""
        t0, t1 = 0.0, 1.0
        dx, dy = b[0] - a[0], b[1] - a[1]
        for p, q in (
            (-dx, a[0] - self.x_min),
            (dx, self.x_max - a[0]),
            (-dy, a[1] - self.y_min),
            (dy, self.y_max - a[1]),
        ):
            if p == 0.0:
                if q <= 0.0:
                    return False  # parallel to this edge and outside (or on) it
                continue
            t = q / p
            if p < 0.0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 >= t1:
                return False  # empty or a single touching point
        return True


class FreeSpace:
    """Where the centre of a robot of radius `radius` may be on a width x height map."""

    def __init__(
        self,
        width: float,
        height: float,
        obstacles: Iterable[Box] = (),
        *,
        radius: float = 0.25,
        cell: float = 0.25,
    ) -> None:
        if width <= 2 * radius or height <= 2 * radius or cell <= 0:
            raise ValueError("the map must be wider and taller than the robot; cell > 0")
        self.width = width
        self.height = height
        self.radius = radius
        self.bounds = Box(radius, radius, width - radius, height - radius)
        self.blocked = tuple(box.grown(radius) for box in obstacles)
        self._cell = cell
        self._cols = max(1, int(width / cell))
        self._rows = max(1, int(height / cell))

    def inside(self, p: Point) -> bool:
        """True if p is within the map edge (pulled in by the radius)."""
        b = self.bounds
        return b.x_min <= p[0] <= b.x_max and b.y_min <= p[1] <= b.y_max

    def is_free(self, p: Point) -> bool:
        """True if the robot's centre may be at p."""
        return self.inside(p) and not any(box.contains(p) for box in self.blocked)

    def segment_free(self, a: Point, b: Point) -> bool:
        """True if the robot can drive straight from a to b (both ends assumed free)."""
        return not any(box.crosses(a, b) for box in self.blocked)

    def plan(self, start: Point, goal: Point) -> list[Point] | None:
        """Points to drive through from start to goal (goal last), or None if unreachable."""
        if not self.is_free(goal):
            return None
        if self.segment_free(start, goal):
            return [goal]
        path = self._astar(start, goal)
        return None if path is None else self._pull_string(start, path)

    # --- grid search -----------------------------------------------------------------------

    def _centre(self, cell: tuple[int, int]) -> Point:
        return (
            (cell[0] + 0.5) * self.width / self._cols,
            (cell[1] + 0.5) * self.height / self._rows,
        )

    def _cell_of(self, p: Point) -> tuple[int, int]:
        col = min(self._cols - 1, max(0, int(p[0] / self.width * self._cols)))
        row = min(self._rows - 1, max(0, int(p[1] / self.height * self._rows)))
        return col, row

    def _astar(self, start: Point, goal: Point) -> list[Point] | None:
        # Nodes are cell centres; None stands for the start point itself.
        step = self.width / self._cols, self.height / self._rows
        frontier: list[tuple[float, float, tuple[int, int] | None]] = [(0.0, 0.0, None)]
        came_from: dict[tuple[int, int] | None, tuple[int, int] | None] = {}
        cost: dict[tuple[int, int] | None, float] = {None: 0.0}
        closed: set[tuple[int, int] | None] = set()
        sc, sr = self._cell_of(start)
        while frontier:
            _, g, node = heapq.heappop(frontier)
            if node in closed:
                continue
            closed.add(node)
            here = start if node is None else self._centre(node)
            if node is not None and self.segment_free(here, goal):
                return [*self._unwind(came_from, node), goal]
            if node is None:
                candidates = [
                    ((sc + dx, sr + dy), math.dist(start, self._centre((sc + dx, sr + dy))))
                    for dx in (-1, 0, 1)
                    for dy in (-1, 0, 1)
                ]
            else:
                candidates = [
                    ((node[0] + dx, node[1] + dy), math.hypot(step[0] * dx, step[1] * dy))
                    for dx, dy in _NEIGHBOURS
                ]
            for nxt, length in candidates:
                if not (0 <= nxt[0] < self._cols and 0 <= nxt[1] < self._rows) or nxt in closed:
                    continue
                there = self._centre(nxt)
                if not self.is_free(there) or not self.segment_free(here, there):
                    continue
                new_cost = g + length
                if new_cost < cost.get(nxt, math.inf):
                    cost[nxt] = new_cost
                    came_from[nxt] = node
                    heapq.heappush(frontier, (new_cost + math.dist(there, goal), new_cost, nxt))
        return None

    def _unwind(
        self, came_from: dict[tuple[int, int] | None, tuple[int, int] | None], node: tuple[int, int]
    ) -> list[Point]:
        cells: list[tuple[int, int]] = []
        current: tuple[int, int] | None = node
        while current is not None:
            cells.append(current)
            current = came_from[current]
        return [self._centre(cell) for cell in reversed(cells)]

    def _pull_string(self, start: Point, path: Sequence[Point]) -> list[Point]:
        """Drop every point the robot can skip by driving straight past it."""
        out: list[Point] = []
        here = start
        i = 0
        while i < len(path):
            far = i
            for j in range(len(path) - 1, i, -1):
                if self.segment_free(here, path[j]):
                    far = j
                    break
            out.append(path[far])
            here = path[far]
            i = far + 1
        return out

"""The maps a robot stores, which one is active, and their waypoints: pure and in memory.

Times are the world's seconds; the server turns them into wall-clock stamps. A map's frame
has its origin at the lower-left corner, so a point is on the map when 0 <= x <= width and
0 <= y <= height; a robot's centre keeps its radius away from the edge and the obstacles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import msgspec

from drivers.robot.messages import Pose, Reason, Waypoint
from sim.robot.planner import Box, FreeSpace, wrap_angle
from sim.robot.refused import Refused

__all__ = ["MapStore", "StoredMap", "demo_map"]


class StoredMap(msgspec.Struct, frozen=True, kw_only=True):
    """One map as the robot keeps it; replaced whole on every change."""

    map_id: str
    name: str
    description: str = ""
    width_m: float
    height_m: float
    resolution: float = 0.05
    obstacles: tuple[Box, ...] = ()
    dock: Pose
    waypoints: tuple[Waypoint, ...] = ()
    created_s: float = 0.0
    modified_s: float = 0.0

    def waypoint(self, name: str) -> Waypoint | None:
        """The waypoint called name, if any."""
        return next((w for w in self.waypoints if w.name == name), None)


def demo_map(map_id: str = "map-1", name: str = "station") -> StoredMap:
    """A 12 m x 8 m cell with a bench in the middle, a dock and three waypoints."""
    return StoredMap(
        map_id=map_id,
        name=name,
        description="demo station floor",
        width_m=12.0,
        height_m=8.0,
        obstacles=(Box(5.0, 3.0, 7.0, 5.0),),
        dock=Pose(x=1.0, y=1.0, yaw=0.0),
        waypoints=(
            Waypoint(name="pick", x=10.0, y=6.5, yaw=math.pi / 2, description="parts rack"),
            Waypoint(name="place", x=10.0, y=1.5, yaw=-math.pi / 2, description="fixture"),
            Waypoint(name="inspect", x=3.0, y=6.0, yaw=math.pi, description="camera cell"),
        ),
    )


class MapStore:
    """Maps by id, the active one, and a FreeSpace per map for a robot of radius `radius`."""

    def __init__(self, maps: Iterable[StoredMap], *, radius: float = 0.25) -> None:
        self._radius = radius
        self._maps: dict[str, StoredMap] = {}
        self._free: dict[str, FreeSpace] = {}
        self._ids = itertools.count(1)
        for stored in maps:
            self.add(stored)
        if not self._maps:
            raise ValueError("a robot needs at least one map")
        self._active = next(iter(self._maps))

    # --- reading ---------------------------------------------------------------------------

    @property
    def active(self) -> StoredMap:
        """The map the robot navigates on."""
        return self._maps[self._active]

    @property
    def active_free(self) -> FreeSpace:
        """Free space of the active map."""
        return self._free[self._active]

    def all(self) -> list[StoredMap]:
        """Every map, in the order they were added."""
        return list(self._maps.values())

    def get(self, map_id: str) -> StoredMap:
        """The map with map_id; Refused(unknown_map) if there is none."""
        stored = self._maps.get(map_id)
        if stored is None:
            raise Refused(Reason.UNKNOWN_MAP, f"no map {map_id!r}")
        return stored

    def free_space(self, map_id: str) -> FreeSpace:
        """Free space of map_id."""
        self.get(map_id)
        return self._free[map_id]

    def new_id(self) -> str:
        """An id no map has yet."""
        while True:
            candidate = f"map-{next(self._ids)}"
            if candidate not in self._maps:
                return candidate

    # --- changing --------------------------------------------------------------------------

    def add(self, stored: StoredMap) -> None:
        """Store a new map; ValueError if its id is taken or its dock is not free."""
        if stored.map_id in self._maps:
            raise ValueError(f"map {stored.map_id!r} exists")
        free = FreeSpace(stored.width_m, stored.height_m, stored.obstacles, radius=self._radius)
        if not free.is_free((stored.dock.x, stored.dock.y)):
            raise ValueError(f"map {stored.map_id!r}: the dock is not in free space")
        self._maps[stored.map_id] = stored
        self._free[stored.map_id] = free

    def activate(self, map_id: str) -> StoredMap:
        """Make map_id the active map."""
        stored = self.get(map_id)
        self._active = map_id
        return stored

    def update(
        self, map_id: str, *, name: str | None, description: str | None, now_s: float
    ) -> list[str]:
        """Rename or re-describe a map; returns the fields that changed."""
        stored = self.get(map_id)
        changes: dict[str, str] = {}
        if name is not None and name != stored.name:
            changes["name"] = name
        if description is not None and description != stored.description:
            changes["description"] = description
        if changes:
            self._maps[map_id] = msgspec.structs.replace(stored, modified_s=now_s, **changes)
        return ["map_name" if field == "name" else field for field in changes]

    def delete(self, map_id: str) -> int:
        """Delete a map that is not active; returns how many waypoints went with it."""
        stored = self.get(map_id)
        if map_id == self._active:
            raise Refused(Reason.MAP_ACTIVE, f"map {map_id!r} is active; activate another first")
        del self._maps[map_id]
        del self._free[map_id]
        return len(stored.waypoints)

    def upsert_waypoints(
        self, map_id: str, waypoints: Sequence[Waypoint], *, now_s: float
    ) -> tuple[int, int]:
        """Add or replace waypoints (all or none); returns (inserted, updated)."""
        stored = self.get(map_id)
        free = self._free[map_id]
        for w in waypoints:
            if not free.inside((w.x, w.y)):
                raise Refused(
                    Reason.OUTSIDE_MAP, f"waypoint {w.name!r} ({w.x}, {w.y}) is off map {map_id!r}"
                )
            if not free.is_free((w.x, w.y)):
                raise Refused(Reason.UNREACHABLE, f"waypoint {w.name!r} is inside an obstacle")
        by_name = {w.name: w for w in stored.waypoints}
        inserted = sum(1 for w in waypoints if w.name not in by_name)
        for w in waypoints:
            by_name[w.name] = msgspec.structs.replace(w, yaw=wrap_angle(w.yaw))
        self._maps[map_id] = msgspec.structs.replace(
            stored, waypoints=tuple(by_name.values()), modified_s=now_s
        )
        return inserted, len(waypoints) - inserted

    def delete_waypoint(self, map_id: str, name: str, *, now_s: float) -> None:
        """Remove one waypoint; Refused(unknown_waypoint) if the map has none of that name."""
        stored = self.get(map_id)
        if stored.waypoint(name) is None:
            raise Refused(Reason.UNKNOWN_WAYPOINT, f"map {map_id!r} has no waypoint {name!r}")
        self._maps[map_id] = msgspec.structs.replace(
            stored,
            waypoints=tuple(w for w in stored.waypoints if w.name != name),
            modified_s=now_s,
        )

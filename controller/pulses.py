"""Counting pulses a poll can miss (pure).

A bool input that is high for less than a poll interval can rise and fall between two reads
and never be seen. If the PLC also counts those pulses in an integer register, the count
tells how many happened; comparing it with the rising edges Takt saw shows the missed
ones, which are then reported instead of lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PulseTracker"]


@dataclass
class PulseTracker:
    """Reconciles rising edges of a signal with the PLC's counter of them.

    Call `settle()` after each complete read cycle. Within a cycle, and across two cycles,
    the edge and the count may be seen in either order (they sit in different read blocks,
    or a pulse starts between the two reads), so an unmatched count is reported only when
    the next cycle has not matched it either.
    """

    modulus: int = 0x10000  # the counter's wrap (2**16 for 16-bit, 2**32 for 32-bit)
    level: bool | None = None
    count: int | None = None
    edges: int = 0  # rising edges seen this cycle
    counts: int = 0  # counter increments seen this cycle
    old_edges: int = 0  # unmatched from the previous cycle
    old_counts: int = 0
    missed_total: int = 0
    uncounted_total: int = 0  # edges the counter never confirmed (a misconfigured counter?)

    def level_changed(self, value: bool) -> None:
        if value and self.level is False:
            self.edges += 1
        self.level = value

    def count_changed(self, value: int) -> None:
        if self.count is not None:
            self.counts += (value - self.count) % self.modulus
        self.count = value

    def settle(self) -> int:
        """Pulses the counter saw that no edge accounts for (0 when none were missed)."""
        edges, counts = self.old_edges + self.edges, self.old_counts + self.counts
        matched = min(edges, counts)
        # Match the oldest first: what is left over from the previous cycle is final now.
        old_counts_left = max(self.old_counts - matched, 0)
        old_edges_left = max(self.old_edges - matched, 0)
        self.old_counts = counts - matched - old_counts_left
        self.old_edges = edges - matched - old_edges_left
        self.edges = self.counts = 0
        self.missed_total += old_counts_left
        self.uncounted_total += old_edges_left
        return old_counts_left

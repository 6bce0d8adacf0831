"""Helpers of the benchmark scripts; kept out of `bench/*.py`, which `make bench` runs."""

"""Shared helpers for dialtone's benchmarks: processes, ports, /proc sampling, reports."""

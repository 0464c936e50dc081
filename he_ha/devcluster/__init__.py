"""Simulated multi-host clusters on one machine: real daemons per simulated host (tests, demo)."""

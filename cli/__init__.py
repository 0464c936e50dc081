"""The hosted-engine shim CLI."""

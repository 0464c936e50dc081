"""Shared storage: the metadata whiteboard (codec + O_DIRECT I/O) and sanlock leases."""

"""The supervisor daemon of one host: ``he-ha run`` (docs/supervisor.md)."""

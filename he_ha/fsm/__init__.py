"""The state machine and the score: pure code, no I/O, no asyncio, no clock reads."""

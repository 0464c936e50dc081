"""A token bucket for mails (pure: the caller passes ``now``, monotonic seconds).

``burst`` mails may go out back to back; after that one more becomes possible every
``refill_seconds``. Transitions that arrive while no token is available are not lost: the
notifier holds them and sends them together in the next mail.

The state can be saved and restored so that a supervisor restart loop cannot reset the
budget (the original mailed on every restart, rhbz#1032644). CLOCK_MONOTONIC is shared by
all processes of one boot, so a saved stamp stays meaningful across restarts; the boot id
tells a saved state from an earlier boot, which is then ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RateLimitError(ValueError):
    """Invalid rate-limit settings."""


@dataclass
class TokenBucket:
    burst: int
    refill_seconds: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, burst: int, refill_seconds: float, now: float) -> TokenBucket:
        if burst < 1:
            raise RateLimitError(f"mail burst must be at least 1, got {burst}")
        if refill_seconds <= 0:
            raise RateLimitError(f"mail refill interval must be positive, got {refill_seconds}")
        return cls(burst=burst, refill_seconds=refill_seconds, tokens=float(burst), stamp=now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) / self.refill_seconds)
        self.stamp = max(self.stamp, now)

    def delay(self, now: float) -> float:
        """Seconds until a mail may be sent (0 when one may be sent now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.refill_seconds

    def take(self, now: float) -> None:
        self._refill(now)
        if self.tokens < 1:
            raise RateLimitError("no mail token available; call delay() first")
        self.tokens -= 1

    def give_back(self, now: float) -> None:
        """Return the token of a mail that did not go out (the server was unreachable)."""
        self._refill(now)
        self.tokens = min(float(self.burst), self.tokens + 1)

    def snapshot(self, boot_id: str) -> dict[str, Any]:
        return {"boot_id": boot_id, "tokens": self.tokens, "stamp": self.stamp}

    def restore(self, saved: dict[str, Any], boot_id: str, now: float) -> bool:
        """Adopt a saved state from this boot; False (and unchanged) for anything else."""
        if saved.get("boot_id") != boot_id:
            return False
        tokens, stamp = saved.get("tokens"), saved.get("stamp")
        if not isinstance(tokens, (int, float)) or not isinstance(stamp, (int, float)) or stamp > now:
            return False
        self.tokens = max(0.0, min(float(self.burst), float(tokens)))
        self.stamp = float(stamp)
        self._refill(now)
        return True

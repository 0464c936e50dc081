"""The notifier the supervisor calls on every state transition.

``state_transition()`` only filters and enqueues: it never waits for anything, so a dead,
slow or blackholed SMTP server cannot delay a tick. A background task sends the mails, one
SMTP exchange at a time, each bounded by ``smtp-timeout``.

Storm control (the original mailed every transition, and flooded on restart loops):
- a token bucket allows ``burst`` mails back to back, then one per ``refill_seconds``;
- transitions waiting for a token (or for a send in progress) go out together in the next
  mail, their chain collapsed into one ``{detail}`` (``A-B-C, X-Y``): nothing is lost;
- the bucket can be saved to a file in the runtime directory, so restarting the supervisor
  does not refill it;
- the pending queue is bounded (``max_pending``); when it is full the OLDEST transition is
  dropped (the newest say where the host is now), with a warning counting the drops.
Failures are logged with their reason and counted; ``stats`` feeds the metrics. A mail that
failed because the server was down or unreachable (``MailError.transient``) goes back to the
front of the queue, its token returned, and is tried again after a backoff (``retry_seconds``,
doubling up to ``retry_max_seconds``), together with whatever came in meanwhile: a failover
during an SMTP outage is mailed when the server is back (issue 19). Other failures (5xx,
refused recipients, TLS, AUTH) are not retried.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import structlog

from he_ha.atomicfile import write_atomically
from he_ha.config import BrokerConfig
from he_ha.notify.mail_rules import RuleError, TransitionRule, describe_transitions, transition_detail
from he_ha.notify.mailer import MailError, TlsOptions, flatten_as_sent, make_tls_context, send_mail
from he_ha.notify.message import MessageError, build_message
from he_ha.notify.ratelimit import RateLimitError, TokenBucket
from he_ha.notify.template import (
    ALERT_EVENT_TYPE,
    DEFAULT_ALERT_TEMPLATE_PATH,
    DEFAULT_TEMPLATE_PATH,
    EVENT_TYPE,
    Template,
    TemplateError,
    load_template,
    template_fields,
)

log = structlog.get_logger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STATE_SAVE_TIMEOUT = 2.0  # seconds; the state file lives on tmpfs (/run)


class _Queued(NamedTuple):
    old: str
    new: str
    at: float  # wall clock (time.time()) of the transition: the mail's {time}


class _QueuedAlert(NamedTuple):
    kind: str
    reason: str
    at: float  # wall clock (time.time()) it was raised


def _describe(queued: list[_Queued]) -> str:
    return describe_transitions([(q.old, q.new) for q in queued])


class NotifyConfigError(ValueError):
    """The notification settings cannot work: smtp-user without smtp-password, a bad rule,
    an unreadable CA file, an impossible rate limit or queue size."""


@dataclass(frozen=True)
class NotifySettings:
    """Settings beyond broker.conf. Defaults are the documented production values."""

    template_path: Path | None = DEFAULT_TEMPLATE_PATH
    alert_template_path: Path | None = DEFAULT_ALERT_TEMPLATE_PATH  # missing: the built-in alert template
    burst: int = 5
    refill_seconds: float = 120.0
    max_pending: int = 100
    state_file: Path | None = None  # e.g. /run/he-ha/notify-ratelimit.json
    tls: TlsOptions = field(default_factory=TlsOptions)
    hostname: str | None = None  # None: socket.gethostname(), as the original
    retry_seconds: float = 5.0  # first wait after a transient failure; doubles on each failure
    retry_max_seconds: float = 300.0  # the longest wait between two tries while the server is down


@dataclass(frozen=True)
class NotifierStats:
    matched: int  # transitions that matched the [notify] rule and were queued
    filtered: int  # transitions the rule did not select
    sent: int  # mails accepted by the SMTP server
    failed: int  # mails that could not be sent (reason in last_error and the log)
    dropped: int  # queued transitions dropped, oldest first, because the queue was full
    coalesced: int  # transitions that went out in a mail together with others
    pending: int  # transitions waiting for the next mail
    last_error: str | None
    last_error_time: float | None  # wall clock (time.time())
    alerts: int = 0  # alerts queued (issue 14: whatever the state_transition rule says)
    alerts_filtered: int = 0  # alerts the [notify] ha_alert rule did not select


class Notifier:
    """Construct at start-up (reads the template, CA and state files), then ``await start()``."""

    def __init__(self, config: BrokerConfig, settings: NotifySettings | None = None) -> None:
        settings = NotifySettings() if settings is None else settings
        email = config.email
        if email.smtp_user and email.smtp_password is None:
            raise NotifyConfigError("broker.conf [email]: smtp-user is set but smtp-password is missing")
        if settings.max_pending < 1:
            raise NotifyConfigError(f"max_pending must be at least 1, got {settings.max_pending}")
        if not 0 < settings.retry_seconds <= settings.retry_max_seconds:
            raise NotifyConfigError(
                f"retry_seconds must be positive and at most retry_max_seconds, got "
                f"{settings.retry_seconds} and {settings.retry_max_seconds}"
            )
        if email.smtp_user and not email.uses_tls:
            log.warning(
                "SMTP authentication without smtp-starttls or smtps sends the password in clear",
                server=email.smtp_server,
            )
        self._config = config
        self._settings = settings
        self._template: Template = load_template(settings.template_path)
        self._alert_template: Template = load_template(settings.alert_template_path, alert=True)
        self._hostname = settings.hostname or socket.gethostname()
        self._check_template_makes_a_mail()
        try:
            self._rule = TransitionRule(config.notify.state_transition)
            self._alert_rule = TransitionRule(config.notify.ha_alert)
            tls = (
                settings.tls if settings.tls.ca_file is not None else replace(settings.tls, ca_file=email.smtp_ca_file)
            )
            self._tls: ssl.SSLContext | None = make_tls_context(tls) if email.uses_tls else None
            self._bucket = TokenBucket.full(settings.burst, settings.refill_seconds, time.monotonic())
        except (RuleError, MailError, RateLimitError) as exc:
            raise NotifyConfigError(str(exc)) from None
        self._boot_id = _read_boot_id()
        self._restore_bucket()
        self._holding = False  # a rate-limit hold is in progress (logged once per hold)
        self._pending: deque[_Queued] = deque()
        self._alerts: deque[_QueuedAlert] = deque()
        self._retry_at: float | None = None  # monotonic: no try before this (after a transient failure)
        self._retry_delay = settings.retry_seconds
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._matched = self._filtered = self._sent = self._failed = self._dropped = self._coalesced = 0
        self._alerts_queued = self._alerts_filtered = 0
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        if self._rule.disabled:
            log.info("state transition mails disabled: [notify] state_transition is empty")
        log.debug("notifier ready", template=self._template.source, rule=self._rule.pattern, server=email.smtp_server)

    def _check_template_makes_a_mail(self) -> None:
        # Report a template that renders but is no mail (no header block), or a mail that
        # cannot be encoded, now rather than at every mail: rendered with this host's name
        # and broker.conf's values and flattened to the bytes DATA would carry.
        for template, detail, event_type in (
            (self._template, "EngineDown-EngineStart", EVENT_TYPE),
            (self._alert_template, "kind: reason", ALERT_EVENT_TYPE),
        ):
            fields = template_fields(
                self._config.email, self._hostname, detail, when=time.time(), event_type=event_type
            )
            sample = template.render(fields)
            try:
                flatten_as_sent(build_message(sample, self._config.email, self._hostname), self._config.email)
            except MessageError as exc:
                raise TemplateError(template.source, f"does not make a mail: {exc}") from None
            except (UnicodeError, ValueError) as exc:  # what the send itself would raise
                raise TemplateError(template.source, f"makes a mail that cannot be sent: {exc}") from None

    # --- the caller's side: never waits ---------------------------------------------------------

    def state_transition(self, old: str, new: str) -> bool:
        """Queue a mail for ``old -> new`` if the rule selects it. Returns True when queued.

        Call from the event loop's thread. Does no I/O and never waits.
        """
        if not self._rule.matches(transition_detail(old, new)):
            self._filtered += 1
            return False
        self._pending.append(_Queued(old, new, time.time()))
        self._trim()
        self._matched += 1
        self._idle.clear()
        self._wake.set()
        return True

    def _trim(self) -> None:
        while len(self._pending) > self._settings.max_pending:
            dropped = self._pending.popleft()
            self._dropped += 1
            log.warning(
                "notification queue full: dropped the oldest transition",
                dropped=transition_detail(dropped.old, dropped.new),
                max_pending=self._settings.max_pending,
                dropped_total=self._dropped,
            )
        while len(self._alerts) > self._settings.max_pending:
            self._alerts.popleft()
            self._dropped += 1

    def alert(self, kind: str, reason: str) -> bool:
        """Queue a mail for an alert (he_ha.fsm.alerts) being raised. Returns True when queued.

        Alerts are mailed whatever the state_transition rule selects (only broker.conf
        ``[notify] ha_alert`` filters them: every kind by default) and go out before waiting
        transitions, in a mail of their own. Call from the event loop's thread; no I/O."""
        if not self._alert_rule.matches(kind):
            self._alerts_filtered += 1
            return False
        self._alerts.append(_QueuedAlert(kind, reason, time.time()))
        self._trim()
        self._alerts_queued += 1
        self._idle.clear()
        self._wake.set()
        return True

    @property
    def stats(self) -> NotifierStats:
        return NotifierStats(
            matched=self._matched,
            filtered=self._filtered,
            sent=self._sent,
            failed=self._failed,
            dropped=self._dropped,
            coalesced=self._coalesced,
            pending=len(self._pending) + len(self._alerts),
            last_error=self._last_error,
            last_error_time=self._last_error_time,
            alerts=self._alerts_queued,
            alerts_filtered=self._alerts_filtered,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="he-ha-notifier")

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent; False when ``timeout`` expired first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, flush_timeout: float = 0.0) -> None:
        """Stop sending. With ``flush_timeout`` > 0, first give queued mails that long.

        The flush respects the rate limit: a restart loop must not flush its way past it.
        """
        if self._task is None:
            return
        if flush_timeout > 0:
            await self.drain(flush_timeout)
        # Cancel AND flag: Python 3.11's asyncio.wait_for (inside aiosmtplib) can swallow a
        # cancellation that races with a reply; the flag still ends the loop.
        self._stopping = True
        self._wake.set()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            # Our own cancellation of the sender; re-raise only if *we* are being cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        self._task = None
        if self._pending or self._alerts:
            log.warning(
                "notifier stopped with transitions not mailed",
                pending=_describe(list(self._pending)),
                alerts=[a.kind for a in self._alerts],
            )

    # --- the sender -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            if self._stopping:
                return
            if self._retry_at is not None and (wait := self._retry_at - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the server was down; what came in meanwhile joins the retry
                continue
            delay = self._bucket.delay(time.monotonic())
            if delay > 0:
                if not self._holding:
                    self._holding = True
                    log.info(
                        "notification rate limit reached: holding transitions",
                        pending=len(self._pending),
                        send_in_seconds=round(delay, 1),
                    )
                await asyncio.sleep(delay)
                continue  # more transitions may have arrived; they join the same mail
            self._holding = False
            alerts, batch = list(self._alerts), [] if self._alerts else list(self._pending)
            self._alerts.clear()
            if batch:
                self._pending.clear()
            if not self._pending:
                self._wake.clear()
            if not alerts and not batch:
                continue
            self._bucket.take(time.monotonic())
            if alerts:  # alerts first, in a mail of their own
                retry = await self._deliver_alerts(alerts)
                if retry:
                    self._alerts.extendleft(reversed(alerts))
            else:
                retry = await self._deliver(batch)
                if retry:
                    self._pending.extendleft(reversed(batch))
                elif len(batch) > 1:
                    self._coalesced += len(batch)
            if retry:  # nothing went out: the token comes back, the mail waits for the server
                self._bucket.give_back(time.monotonic())
                self._trim()
                self._retry_at = time.monotonic() + self._retry_delay
                self._retry_delay = min(self._retry_delay * 2, self._settings.retry_max_seconds)
                self._wake.set()
            else:
                self._retry_at, self._retry_delay = None, self._settings.retry_seconds
            await self._save_bucket()
            if not self._pending and not self._alerts:
                self._idle.set()

    async def _deliver(self, batch: list[_Queued]) -> bool:
        """Send one mail; True when it failed transiently and should be tried again."""
        detail = _describe(batch)
        email = self._config.email
        try:
            # {time}: the first transition's time (a coalesced mail tells the story from there).
            rendered = self._template.render(template_fields(email, self._hostname, detail, when=batch[0].at))
            message = build_message(rendered, email, self._hostname)
            await send_mail(message, email, self._tls, self._hostname)
        except MailError as exc:
            return self._record_failure(detail, str(exc), exc.transient)
        except (MessageError, TemplateError) as exc:
            return self._record_failure(detail, str(exc))
        except Exception as exc:  # a notification bug must never kill the supervisor (ha@779cb5c)
            log.exception("notification failed with an unexpected error", detail=detail)
            return self._record_failure(detail, f"unexpected {exc.__class__.__name__}: {exc}")
        self._sent += 1
        log.info("notification sent", detail=detail, transitions=len(batch), to=email.destination_emails)
        return False

    async def _deliver_alerts(self, alerts: list[_QueuedAlert]) -> bool:
        detail = "; ".join(f"{a.kind}: {a.reason}" for a in alerts)
        email = self._config.email
        try:
            fields = template_fields(email, self._hostname, detail, when=alerts[0].at, event_type=ALERT_EVENT_TYPE)
            message = build_message(self._alert_template.render(fields), email, self._hostname)
            await send_mail(message, email, self._tls, self._hostname)
        except MailError as exc:
            return self._record_failure(detail, str(exc), exc.transient)
        except (MessageError, TemplateError) as exc:
            return self._record_failure(detail, str(exc))
        except Exception as exc:  # a notification bug must never kill the supervisor
            log.exception("alert notification failed with an unexpected error", detail=detail)
            return self._record_failure(detail, f"unexpected {exc.__class__.__name__}: {exc}")
        self._sent += 1
        log.info("alert notification sent", alerts=[a.kind for a in alerts], to=email.destination_emails)
        return False

    def _record_failure(self, detail: str, reason: str, transient: bool = False) -> bool:
        """Count and log a failed mail; returns ``transient`` (True: it will be tried again)."""
        self._failed += 1
        self._last_error = reason
        self._last_error_time = time.time()
        if transient:
            log.error(
                "notification not sent",
                detail=detail,
                reason=reason,
                failed_total=self._failed,
                retry_in_seconds=round(self._retry_delay, 1),
            )
        else:
            log.error("notification not sent", detail=detail, reason=reason, failed_total=self._failed)
        return transient

    # --- rate-limit state across restarts -----------------------------------------------------

    def _restore_bucket(self) -> None:
        path = self._settings.state_file
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable notification rate-limit state", path=str(path), error=str(exc))
            return
        if isinstance(saved, dict) and self._bucket.restore(saved, self._boot_id, time.monotonic()):
            log.debug("notification rate-limit state restored", path=str(path), tokens=round(self._bucket.tokens, 2))

    async def _save_bucket(self) -> None:
        path = self._settings.state_file
        if path is None:
            return
        snapshot = self._bucket.snapshot(self._boot_id)
        try:
            async with asyncio.timeout(STATE_SAVE_TIMEOUT):
                await asyncio.to_thread(write_atomically, path, json.dumps(snapshot))
        except (OSError, TimeoutError) as exc:
            log.warning("cannot save notification rate-limit state", path=str(path), error=str(exc) or "timed out")


def _read_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except OSError:
        # No /proc: a saved stamp from an earlier boot is still refused when it lies in the future.
        return ""

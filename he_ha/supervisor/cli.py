"""``he-ha run``: the supervisor daemon of one host (the systemd unit's ExecStart)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from he_ha.admin.metrics_listener import parse_listen
from he_ha.config import ConfigPaths, to_bool
from he_ha.fsm import TimingConfig, TimingError
from he_ha.fsm.timing import BOOL_KEYS
from he_ha.journal import JOURNAL_SOCKET
from he_ha.logsetup import DEFAULT_LOG_FILE, LOG_FILE_KEEP, LOG_TARGETS, configure_logging
from he_ha.supervisor.settings import (
    DEFAULT_BROKER_SOCKET,
    HOLDER_KINDS,
    QEMU_CONF,
    SupervisorSettings,
    default_holder_kind,
)

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ConfigPaths()
    files = parser.add_argument_group("configuration files")
    files.add_argument("--hosted-engine-conf", type=Path, default=defaults.hosted_engine_conf, metavar="PATH")
    files.add_argument("--agent-conf", type=Path, default=defaults.agent_conf, metavar="PATH")
    files.add_argument("--broker-conf", type=Path, default=defaults.broker_conf, metavar="PATH")
    files.add_argument("--ha-conf", type=Path, default=defaults.ha_conf, metavar="PATH")
    files.add_argument(
        "--vm-conf",
        type=Path,
        default=None,
        metavar="PATH",
        help="vm.conf or a plain domain XML (default: hosted-engine.conf 'conf')",
    )
    files.add_argument("--notification-template", type=Path, default=None, metavar="PATH")

    files.add_argument(
        "--mount-root",
        type=Path,
        default=Path("/rhev/data-center/mnt"),
        metavar="DIR",
        help="VDSM's storage mount root, where the shared volumes are looked up (default /rhev/data-center/mnt)",
    )
    files.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/he-ha"),
        metavar="DIR",
        help="persistent state: the last good VM definition (default /var/lib/he-ha)",
    )
    files.add_argument(
        "--host-root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="where this host's facts for the engine XML's sysinfo are read: /etc/vdsm/vdsm.id, "
        "the OS release files, the DMI UUID (default /)",
    )

    host = parser.add_argument_group("host")
    host.add_argument("--libvirt-uri", default="qemu:///system", metavar="URI")
    host.add_argument(
        "--sanlock-run-dir",
        type=Path,
        default=_env_path("SANLOCK_RUN_DIR"),
        metavar="DIR",
        help="the sanlock daemon of this host (default: $SANLOCK_RUN_DIR, else /run/sanlock)",
    )
    host.add_argument(
        "--run-dir",
        type=Path,
        default=Path("/run/he-ha"),
        metavar="DIR",
        help="admin socket, lease-keeper pid file, fence file, notifier state (default /run/he-ha)",
    )
    host.add_argument("--admin-socket", type=Path, default=None, metavar="PATH", help="default RUN_DIR/admin.sock")
    host.add_argument("--admin-group", default=None, metavar="GROUP", help="group allowed to change things")
    host.add_argument(
        "--broker-socket",
        type=_optional_path,
        default=DEFAULT_BROKER_SOCKET,
        metavar="PATH",
        help="the original broker's XML-RPC socket, served for VDSM, the engine UI and cockpit "
        f"(default {DEFAULT_BROKER_SOCKET}; an empty value: not served)",
    )
    host.add_argument(
        "--metrics-listen",
        type=_listen_address,
        default=None,
        metavar="ADDRESS:PORT",
        help="also serve GET /metrics (read-only, nothing else) over TCP on this address, e.g. "
        "192.0.2.10:9716 or [::1]:9716 (default: only on the admin socket)",
    )
    host.add_argument("--hostname", default=None, help="name published in the whiteboard (default: gethostname)")
    host.add_argument(
        "--lease-holder",
        choices=HOLDER_KINDS,
        default=None,
        help="who holds the VM lease: keeper, worker, qemu (default: qemu when the system libvirtd "
        "uses the sanlock lock manager (--qemu-conf), as on oVirt hosts; worker for test:/// "
        "URIs; else keeper)",
    )
    host.add_argument(
        "--qemu-conf",
        type=Path,
        default=QEMU_CONF,
        metavar="PATH",
        help=f"libvirt's QEMU driver configuration, read for the default lease holder (default {QEMU_CONF})",
    )
    host.add_argument(
        "--migrate-uri",
        default="qemu+tls://{hostname}/system",
        metavar="TEMPLATE",
        help="destination libvirt URI for live migration; {hostname} is the target's name",
    )

    timing = add_timing_arguments(parser)
    timing.add_argument(
        "--health-url", default=None, metavar="URL", help="default http://<fqdn>/ovirt-engine/services/health"
    )
    timing.add_argument(
        "--stop-deadline",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="SIGTERM: exit anyway after this long (default 30)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--decision-log", type=Path, default=None, metavar="PATH", help="append decisions as JSON lines"
    )
    output.add_argument(
        "--decision-ring",
        type=positive_int,
        default=100,
        metavar="N",
        help="decisions kept in memory for the admin API (default 100)",
    )
    output.add_argument("--log-json", action="store_true", help="log as JSON lines on stderr")
    output.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    output.add_argument(
        "--log-target",
        default="auto",
        choices=LOG_TARGETS,
        help="journal: journald's native protocol (priorities, fields); stderr: lines with a "
        "timestamp; auto (default): journal when stderr is connected to journald and "
        "--log-json is not given",
    )
    output.add_argument(
        "--log-file",
        type=_optional_path,
        default=None,
        metavar="PATH",
        help=f"also log to this file, rotated at midnight (default: none; the original agent's was {DEFAULT_LOG_FILE})",
    )
    output.add_argument(
        "--log-file-keep",
        type=positive_int,
        default=LOG_FILE_KEEP,
        metavar="N",
        help=f"rotated log files kept (default {LOG_FILE_KEEP})",
    )


def add_timing_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The timing options; shared with ``he-ha failover-bound`` so it takes the same flags."""
    timing = parser.add_argument_group("timing")
    timing.add_argument(
        "--io-timeout", type=positive_int, default=10, metavar="S", help="sanlock io_timeout (default 10)"
    )
    timing.add_argument("--tick-period", type=positive_float, default=10.0, metavar="S", help="default 10")
    timing.add_argument(
        "--timing",
        action="append",
        default=[],
        metavar="KEY=SECONDS",
        help="state-machine timing override (docs/fsm.md), repeatable, e.g. liveness=6; "
        "failback=true moves the engine back to a better-priority host",
    )
    timing.add_argument(
        "--peer-poll",
        type=non_negative_float,
        default=2.0,
        metavar="S",
        help="whiteboard poll for changed peer slots (default 2; 0: off)",
    )
    timing.add_argument(
        "--storage-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="deadline of each storage read/write and sanlock query in a tick (default 5)",
    )
    timing.add_argument("--monitor-interval", type=positive_float, default=10.0, metavar="S", help="default 10")
    timing.add_argument(
        "--health-grace",
        type=non_negative_float,
        default=600.0,
        metavar="S",
        help="start-up grace of the engine health page (default 600)",
    )
    return timing


def timing_from(args: argparse.Namespace) -> TimingConfig:
    """The state machine's timing from --tick-period and --timing; TimingError names the bad one."""
    overrides: dict[str, object] = {"loop_delay": args.tick_period}
    for item in args.timing:
        key, sep, value = item.partition("=")
        if not sep:
            raise TimingError(f"--timing {item!r}: expected KEY=SECONDS")
        if key.strip() in BOOL_KEYS:  # a switch: failback=true|false (issue 14)
            try:
                overrides[key.strip()] = to_bool(value)
            except ValueError:
                raise TimingError(f"--timing {item!r}: {value!r} is not true or false") from None
            continue
        try:
            number: float | int = int(value) if key.strip() in ("max_retries", "yield_threshold") else float(value)
        except ValueError:
            raise TimingError(f"--timing {item!r}: {value!r} is not a number") from None
        overrides[key.strip()] = number
    return TimingConfig.from_mapping(overrides)


def settings_from(args: argparse.Namespace) -> SupervisorSettings:
    """Raises TimingError/ValueError naming the bad option."""
    return SupervisorSettings(
        paths=ConfigPaths(
            hosted_engine_conf=args.hosted_engine_conf,
            agent_conf=args.agent_conf,
            broker_conf=args.broker_conf,
            ha_conf=args.ha_conf,
        ),
        vm_conf=args.vm_conf,
        mount_root=args.mount_root,
        state_dir=args.state_dir,
        host_root=args.host_root,
        notification_template=args.notification_template,
        libvirt_uri=args.libvirt_uri,
        sanlock_run_dir=args.sanlock_run_dir,
        run_dir=args.run_dir,
        admin_socket=args.admin_socket,
        admin_group=args.admin_group,
        broker_socket=args.broker_socket,
        io_timeout=args.io_timeout,
        timing=timing_from(args),
        peer_poll=args.peer_poll,
        storage_timeout=args.storage_timeout,
        monitor_interval=args.monitor_interval,
        health_url=args.health_url,
        health_grace=args.health_grace,
        # Resolved here, before the event loop runs (it reads qemu.conf).
        holder=args.lease_holder or default_holder_kind(args.libvirt_uri, args.qemu_conf),
        qemu_conf=args.qemu_conf,
        migrate_uri=args.migrate_uri,
        decision_log=args.decision_log,
        metrics_listen=args.metrics_listen,
        decision_ring=args.decision_ring,
        hostname=args.hostname,
        log_json=args.log_json,
        log_level=args.log_level,
        stop_deadline=args.stop_deadline,
    )


def run(args: argparse.Namespace) -> int:
    try:
        configure_logging(
            json=args.log_json,
            level=args.log_level,
            target=args.log_target,
            log_file=args.log_file,
            log_file_keep=args.log_file_keep,
            journal_socket=_env_path("HE_HA_JOURNAL_SOCKET") or JOURNAL_SOCKET,
        )  # the env: tests
    except OSError as exc:  # the log file's directory or file cannot be made
        print(f"he-ha run: --log-file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = settings_from(args)
    except (TimingError, ValueError) as exc:
        print(f"he-ha run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from he_ha.supervisor.daemon import run_daemon  # heavy imports only for a real run

    return run_daemon(settings)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _listen_address(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value

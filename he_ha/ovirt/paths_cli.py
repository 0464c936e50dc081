"""``he-ha storage-paths``: where this host's shared volumes are, and which rule found each.

Prints JSON ``{"metadata": {"path", "rule"}, "lockspace": {...}, "conf": {...} or null}``;
exit 1 with the error (the key, the UUIDs and every path tried) when one is missing, 2 for
a hosted-engine.conf that does not load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from he_ha.config import ConfigError, ConfigPaths, load_hosted_engine_conf
from he_ha.ovirt.layout import DEFAULT_MOUNT_ROOT, VdsmRoots, VolumeNotFound, resolve_volumes

EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosted-engine-conf", type=Path, default=ConfigPaths().hosted_engine_conf, metavar="FILE")
    parser.add_argument(
        "--mount-root",
        type=Path,
        default=DEFAULT_MOUNT_ROOT,
        metavar="DIR",
        help=f"VDSM's storage mount root (default {DEFAULT_MOUNT_ROOT})",
    )


def run(args: argparse.Namespace) -> int:
    try:
        conf = load_hosted_engine_conf(args.hosted_engine_conf)
        volumes = resolve_volumes(conf, VdsmRoots.from_mount_root(args.mount_root), args.hosted_engine_conf)
    except VolumeNotFound as exc:
        print(f"he-ha storage-paths: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except ConfigError as exc:
        print(f"he-ha storage-paths: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        json.dumps(
            {
                "metadata": volumes.metadata.as_json(),
                "lockspace": volumes.lockspace.as_json(),
                "conf": volumes.conf.as_json() if volumes.conf is not None else None,
            },
            indent=2,
        )
    )
    return 0

"""What the supervisor imports at start (issue 16 item 3: idle RSS): ``he-ha run`` loads the
daemon and what an idle host uses, not the modules of paths it may never take; each is
loaded where it is first used. bench/bench_supervisor.py measures the RSS; this guards the
imports that were taken out of the start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Not loaded by ``he-ha run`` at start: the other subcommands' modules, the storage
# provisioning and repair code (the broker socket's reset_lockspace loads it), the rotating
# log file's handler (--log-file, off by default).
NOT_AT_START = ("he_ha.sim", "he_ha.devcluster", "yaml", "he_ha.provision", "he_ha.repair", "logging.handlers")


def test_he_ha_run_imports_no_module_of_a_rare_path() -> None:
    code = (
        "import sys\n"
        "from he_ha.main import build_parser\n"
        "build_parser('run')\n"
        "from he_ha.logsetup import configure_logging\n"
        "configure_logging(target='stderr')\n"
        "import he_ha.supervisor.daemon\n"
        f"print(sorted(n for n in sys.modules if n.startswith({NOT_AT_START!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"

"""The README's main command, run as a user runs it: real sanlock daemons, real files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_hosts_see_each_other_and_one_holds_the_lease(tmp_path: Path) -> None:
    workdir = Path("/var/tmp") / f"he-ha-demo-test-{tmp_path.name}"
    result = subprocess.run(
        [sys.executable, "-m", "he_ha.main", "demo", "--hosts", "3", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "all hosts joined lockspace 'hosted-engine'" in out
    # Every host printed both other hosts' records, with sanlock's view of them.
    for reader in (1, 2, 3):
        block = out.split(f"host{reader} reads the whiteboard")[1].split("reads the whiteboard")[0]
        peers = {int(m) for m in re.findall(r"^    host (\d) 'host\d': score 3400", block, re.M)}
        assert peers == {1, 2, 3} - {reader}, block
        assert block.count("sanlock says LIVE") == 2, block
    assert len(re.findall(r"^host\d: VM lease refused: .*another host", out, re.M)) == 2, out
    assert re.search(r"^host\d holds the VM lease; the others were refused$", out, re.M), out
    assert re.search(r"^host\d released it and host\d acquired it at once$", out, re.M), out
    assert not workdir.exists(), "the demo must remove its working directory"

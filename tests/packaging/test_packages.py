"""The Debian 12 package and the EL9 RPM (issue 17 item 1): packaging/build.sh builds both
(about 40 s; the vendored dependencies are cached by packaging/cache.sh), then each is
inspected (files, dependencies, scriptlets), linted, and the .deb is unpacked into a scratch
dpkg root and run from there. Nothing on this machine changes: no package is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
TOOLS = ("dpkg-deb", "dpkg", "rpmbuild", "rpm")


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in TOOLS:
        require_tool(tool, "rpm" if tool.startswith("rpm") else "dpkg")


def run(*argv: str | Path, **kwargs: object) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return str(done.stdout)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("packages")
    run("bash", REPO / "packaging" / "build.sh", out)
    deb, rpm = out / f"he-ha_{VERSION}_amd64.deb", out / f"he-ha-{VERSION}-1.el9.x86_64.rpm"
    assert deb.is_file() and rpm.is_file()
    return {"deb": deb, "rpm": rpm}


COMMON = [
    "usr/lib/he-ha/bin/python",
    "usr/lib/he-ha/bin/he-ha",
    "usr/lib/he-ha/bin/hosted-engine",
    "usr/lib/he-ha/pyvenv.cfg",
    "usr/lib/he-ha/lib/python3.11/site-packages/he_ha/main.py",
    "usr/lib/he-ha/lib/python3.11/site-packages/he_ha/lease/keeper.py",
    "usr/lib/he-ha/lib/python3.11/site-packages/cli/hosted_engine.py",
    "usr/lib/he-ha/lib/python3.11/site-packages/aiohttp/__init__.py",
    "usr/bin/he-ha",
    "etc/logrotate.d/he-ha",
    "usr/share/man/man8/he-ha.8.gz",
    "usr/share/man/man8/hosted-engine.he-ha.8.gz",
    "usr/share/bash-completion/completions/he-ha",
    "usr/share/bash-completion/completions/hosted-engine",
]


def test_deb_files_dependencies_and_scripts(packages: dict[str, Path]) -> None:
    listing = {
        line.split()[-1].removeprefix("./").rstrip("/")
        if "->" not in line
        else line.split(" -> ")[0].split()[-1].removeprefix("./")
        for line in run("dpkg-deb", "-c", packages["deb"]).splitlines()
    }
    for path in [*COMMON, "lib/systemd/system/he-ha.service", "etc/default/he-ha", "usr/share/doc/he-ha/copyright"]:
        assert path in listing, path
    assert "usr/sbin/hosted-engine" not in listing  # an alternative, made by postinst
    # the bindings are Debian's python3-libvirt and python3-sanlock (system site packages)
    assert not [p for p in listing if "site-packages/libvirt" in p or "site-packages/sanlock" in p]
    fields = run("dpkg-deb", "-f", packages["deb"], "Depends", "Recommends")
    for dep in ("python3-libvirt", "python3-sanlock", "sanlock", "python3 (>= 3.11)"):
        assert dep in fields
    control = Path(run("mktemp", "-d").strip())
    try:
        run("dpkg-deb", "-e", packages["deb"], control)
        assert (control / "conffiles").read_text().split() == ["/etc/default/he-ha", "/etc/logrotate.d/he-ha"]
        postinst = (control / "postinst").read_text()
        assert (
            "update-alternatives --install /usr/sbin/hosted-engine hosted-engine /usr/lib/he-ha/bin/hosted-engine"
            in postinst
        )
        assert "--slave /usr/share/man/man8/hosted-engine.8.gz" in postinst
        assert not re.search(
            r"systemctl .*\b(enable|start|restart)\b", postinst
        )  # never enabled/started by the package
        assert "update-alternatives --remove hosted-engine" in (control / "prerm").read_text()
    finally:
        shutil.rmtree(control)


def test_rpm_files_dependencies_and_scriptlets(packages: dict[str, Path]) -> None:
    files = set(run("rpm", "-qlp", packages["rpm"]).split())
    for path in [
        *COMMON,
        "usr/lib/systemd/system/he-ha.service",
        "etc/sysconfig/he-ha",
        "var/log/he-ha",
        "usr/lib/he-ha/lib/python3.11/site-packages/libvirt.py",
        "usr/lib/he-ha/lib/python3.11/site-packages/sanlock.cpython-311-x86_64-linux-gnu.so",
    ]:
        assert "/" + path in files, path
    assert "/usr/sbin/hosted-engine" not in files
    requires = run("rpm", "-qp", "--requires", packages["rpm"]).splitlines()
    for dep in ("python3.11", "sanlock", "libvirt.so.0()(64bit)", "libsanlock.so.1()(64bit)", "/usr/sbin/alternatives"):
        assert dep in requires, dep
    assert not [r for r in requires if "dist(" in r or r.startswith("python(abi)")]  # vendored: private
    glibc = [tuple(int(x) for x in m.group(1).split(".")) for r in requires if (m := re.search(r"GLIBC_([\d.]+)", r))]
    assert max(glibc) <= (2, 34), max(glibc)  # EL9's glibc is 2.34
    info = run("rpm", "-qip", packages["rpm"])
    assert "Name        : he-ha" in info and "Architecture: x86_64" in info
    scripts = run("rpm", "-qp", "--scripts", packages["rpm"])
    assert "alternatives --install /usr/sbin/hosted-engine hosted-engine /usr/lib/he-ha/bin/hosted-engine" in scripts
    assert "alternatives --remove hosted-engine" in scripts
    configs = run("rpm", "-qp", "--configfiles", packages["rpm"]).split()
    assert configs == ["/etc/logrotate.d/he-ha", "/etc/sysconfig/he-ha"]


def test_lintian_and_rpmlint_are_clean(packages: dict[str, Path]) -> None:
    done = subprocess.run(
        [require_tool("lintian", "lintian"), packages["deb"]], capture_output=True, text=True, timeout=300
    )
    assert [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")] == [], done.stdout
    done = subprocess.run(
        [require_tool("rpmlint", "rpmlint"), "-r", REPO / "packaging" / "rpm" / "he-ha.rpmlintrc", packages["rpm"]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "0 errors, 0 warnings" in done.stdout, done.stdout


def test_deb_unpacks_into_a_scratch_dpkg_root_and_runs(packages: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root"
    for sub in ("var/lib/dpkg/updates", "var/lib/dpkg/info"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    # --unpack runs no maintainer script (there is no preinst) and needs no chroot: the
    # package is unpacked and registered in the scratch database only.
    run("dpkg", f"--root={root}", "--force-depends", "--force-not-root", "--unpack", packages["deb"])
    assert "Status: install ok unpacked" in (root / "var/lib/dpkg/status").read_text()
    assert "/etc/default/he-ha" in run("dpkg", f"--root={root}", "-L", "he-ha")
    venv = root / "usr/lib/he-ha"
    assert (venv / "bin/python").readlink() == Path("/usr/bin/python3")
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    python = venv / "bin/python"
    where = run(
        python, "-c", "import he_ha, cli.hosted_engine, aiohttp, sanlock; print(he_ha.__file__)", cwd=tmp_path, env=env
    )
    assert where.strip() == str(venv / "lib/python3.11/site-packages/he_ha/__init__.py")
    assert VERSION in run(python, venv / "bin/he-ha", "--version", cwd=tmp_path, env=env)
    assert "--vm-status" in run(python, venv / "bin/hosted-engine", "--help", cwd=tmp_path, env=env)
    assert "--hosted-engine-conf" in run(python, venv / "bin/he-ha", "run", "--help", cwd=tmp_path, env=env)
    # the installed unit passes verify once ExecStart resolves inside the scratch root
    unit = (root / "lib/systemd/system/he-ha.service").read_text()
    assert "ExecStart=/usr/bin/he-ha run $HE_HA_OPTIONS" in unit
    copy = tmp_path / "he-ha.service"
    copy.write_text(unit.replace("ExecStart=/usr/bin/he-ha", f"ExecStart={root}/usr/bin/he-ha"))
    done = subprocess.run(
        [require_tool("systemd-analyze", "systemd"), "verify", copy],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "he-ha.service" not in done.stderr, done.stderr


def test_deb_postinst_registers_the_alternative(packages: dict[str, Path], tmp_path: Path) -> None:
    """The maintainer scripts, run with update-alternatives and systemctl stubbed (nothing real changes)."""
    control = tmp_path / "control"
    run("dpkg-deb", "-e", packages["deb"], control)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    for tool in ("update-alternatives", "systemctl"):
        (stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        (stubs / tool).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin"}
    run("sh", control / "postinst", "configure", env=env)
    run("sh", control / "prerm", "remove", env=env)
    log = calls.read_text()
    assert (
        "update-alternatives --install /usr/sbin/hosted-engine hosted-engine /usr/lib/he-ha/bin/hosted-engine 20" in log
    )
    assert "update-alternatives --remove hosted-engine /usr/lib/he-ha/bin/hosted-engine" in log

#!/usr/bin/python3
"""xpra 6.5.3 for tests: built once per machine from ../shared/xpra-modern, then reused.

Debian 12 ships xpra 3.1.3 only; 6.5.3 is built from the source snapshots by the shared
`build` script (about 2 minutes on 2 cores) into a cache directory:
    $XR_XPRA6_DIR, else ~/.cache/xpra-relay-test/xpra-6.5.3
A build counts as complete when its `.complete` marker exists (written only after
`xpra --version` said 6.5.3); anything else in the directory is rebuilt. A lock file makes
concurrent callers wait for one build instead of racing.

Used by the interop tests (`ensure()` returns an `Xpra6` with the command and environment)
and by tools/golden/rencodeplus.py. As a script it builds (or finds) the cache and prints the
environment file:
    /usr/bin/python3 tests/interop/xpra_modern.py
It installs nothing: the Debian packages the build needs are in tools/lib.sh
(XR_TEST_PACKAGES); a missing one fails with its name.
"""

import fcntl
import os
import subprocess
import sys

PYTHON = "/usr/bin/python3"
VERSION = "6.5.3"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
# The snapshots and build script shared by every worktree on the machine.
SHARED_DIR = os.environ.get("XR_XPRA_MODERN_SRC", os.path.abspath(os.path.join(ROOT, "..", "shared", "xpra-modern")))
# Debian packages the shared build script needs (the same list it would apt-get install).
BUILD_PACKAGES = (
    "gcc", "pkg-config", "python3-dev", "python3-setuptools", "libxxhash-dev", "liblz4-dev", "libx11-dev",
    "libxcomposite-dev", "libxdamage-dev", "libxtst-dev", "libxkbfile-dev", "libxres-dev", "libxrandr-dev",
    "libxfixes-dev", "libxi-dev", "libgtk-3-dev", "python-gi-dev", "python3-cairo-dev", "python3-gi",
    "python3-gi-cairo", "python3-cairo", "python3-pil", "xvfb", "xauth", "x11-xkb-utils", "xterm",
)
BUILD_TIMEOUT = 900   # seconds; the build takes about 2 minutes when the machine is quiet


class BuildError(RuntimeError):
    """xpra 6.5.3 could not be built or found; the message says why and where the log is."""


class Xpra6:
    """A complete xpra 6.5.3 build: `cmd` runs xpra, `env()` is what it needs in its environment."""

    def __init__(self, dest):
        self.dest = dest
        vals = {}
        with open(os.path.join(dest, "env.sh")) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line.startswith("export "):
                    line = line[len("export "):]
                if "=" in line:
                    k, v = line.split("=", 1)
                    vals[k.strip()] = v.strip().strip('"')
        missing = [k for k in ("PYTHONPATH", "XPRA_SYSTEM_CONF_DIRS", "XPRA6") if k not in vals]
        if missing:
            raise BuildError(f"{dest}/env.sh lacks {', '.join(missing)}: delete {dest} to rebuild")
        self.pythonpath = vals["PYTHONPATH"]
        self.conf_dirs = vals["XPRA_SYSTEM_CONF_DIRS"]
        self.cmd = vals["XPRA6"].split()          # [python3, .../bin/xpra]

    def env(self, base=None):
        """A copy of `base` (default os.environ) that runs this xpra and not Debian's 3.1.3."""
        e = dict(os.environ if base is None else base)
        e["PYTHONPATH"] = self.pythonpath
        e["XPRA_SYSTEM_CONF_DIRS"] = self.conf_dirs
        # pyenv shims would pick another interpreter for the helper processes xpra starts.
        e["PATH"] = ":".join(p for p in e.get("PATH", "/usr/bin:/bin").split(":") if ".pyenv" not in p)
        return e

    def python(self, code, timeout=60, **kw):
        """Runs `code` with the 6.5.3 modules importable; returns the CompletedProcess."""
        return subprocess.run([PYTHON, "-c", code], env=self.env(), capture_output=True, timeout=timeout, **kw)


def cache_dir():
    d = os.environ.get("XR_XPRA6_DIR")
    if d:
        return os.path.abspath(d)
    return os.path.join(os.path.expanduser("~"), ".cache", "xpra-relay-test", "xpra-" + VERSION)


def missing_packages():
    """The BUILD_PACKAGES dpkg does not list as installed."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *BUILD_PACKAGES],
                         capture_output=True, text=True)
    installed = {ln.split()[0] for ln in out.stdout.splitlines() if ln.endswith(" installed")}
    return [p for p in BUILD_PACKAGES if p not in installed]


def _version_ok(x):
    try:
        r = subprocess.run(x.cmd + ["--version"], env=x.env(), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and VERSION in r.stdout


def _complete(dest):
    marker = os.path.join(dest, ".complete")
    if not os.path.exists(marker):
        return None
    try:
        return Xpra6(dest)
    except (OSError, BuildError):
        return None


def _mark_complete(dest):
    with open(os.path.join(dest, ".complete"), "w") as f:
        f.write(VERSION + "\n")


def ensure(log=print):
    """Returns the cached xpra 6.5.3 build, building it first when absent or incomplete.

    Raises BuildError with a readable reason (missing packages, missing snapshots, build log tail).
    """
    dest = cache_dir()
    x = _complete(dest)
    if x is not None:
        return x
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    with open(dest + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # another process may be building: wait for it
        x = _complete(dest)
        if x is not None:
            return x
        if os.path.exists(os.path.join(dest, "env.sh")):
            # the shared script writes env.sh last, after a good install (a run by hand, or one
            # whose caller died before writing the marker): check it rather than rebuild
            try:
                x = Xpra6(dest)
            except (OSError, BuildError):
                x = None
            if x is not None and _version_ok(x):
                _mark_complete(dest)
                return x
        script = os.path.join(SHARED_DIR, "build")
        if not os.access(script, os.X_OK):
            raise BuildError(f"xpra {VERSION} build script not found at {script} (set XR_XPRA_MODERN_SRC)")
        miss = missing_packages()
        if miss:
            raise BuildError(f"building xpra {VERSION} needs Debian packages not installed: {' '.join(miss)} "
                             "(they are in tools/lib.sh XR_TEST_PACKAGES)")
        log(f"building xpra {VERSION} into {dest} (about 2 minutes, once per machine)")
        env = dict(os.environ, SKIP_APT="1")
        env["PATH"] = ":".join(p for p in env.get("PATH", "/usr/bin:/bin").split(":") if ".pyenv" not in p)
        try:
            r = subprocess.run([script, dest], env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BuildError(f"xpra {VERSION} build took over {BUILD_TIMEOUT} s (log: {dest}/build.log)") from None
        if r.returncode != 0:
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
            raise BuildError(f"xpra {VERSION} build failed (exit {r.returncode}, log: {dest}/build.log):\n{tail}")
        try:
            x = Xpra6(dest)
        except OSError as e:
            raise BuildError(f"xpra {VERSION} build left no usable env.sh in {dest}: {e}") from None
        if not _version_ok(x):
            raise BuildError(f"xpra {VERSION} built in {dest} but `xpra --version` does not say {VERSION}")
        _mark_complete(dest)
        return x


if __name__ == "__main__":
    try:
        built = ensure(log=lambda m: print(m, file=sys.stderr))
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(os.path.join(built.dest, "env.sh"))

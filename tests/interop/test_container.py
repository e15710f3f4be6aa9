"""The relay's container image (deploy/Containerfile) under podman: built by tools/container, run
as shipped (non-root, the relay as PID 1), reached by a real xpra 3.1.3 client attaching to a
session on the host; under podman's default seccomp profile (io_uring blocked: the epoll
backend, with the line that says why) and under deploy/seccomp-io_uring.json (io_uring).

Podman here: this project's machines are themselves containers with hybrid cgroups, so podman
needs `--runtime runc` (crun 1.8.1 refuses hybrid cgroups) and explicit `--ulimit nofile/nproc`
(the limits podman derives are refused); tools/container adds both. A machine where podman
cannot start a container fails these tests with podman's reason: they never pass silently.

The image is built before this module runs (tools/test does it in the background while other
steps run: `tools/container build localhost/xpra-relay:test`) and named by XR_CONTAINER_IMAGE;
without it these tests fail and say so. A cold build compiles the relay with Bazel inside the
build stage: minutes, far over one test's time limit.
"""

import contextlib
import os
import subprocess

import harness
from harness import check

ROOT = harness.ROOT
IO_URING_PROFILE = os.path.join(ROOT, "deploy", "seccomp-io_uring.json")
CONTAINER_UID = 10443   # the image's xpra-relay user (deploy/Containerfile)


def _image():
    """The image under test (XR_CONTAINER_IMAGE), which must exist."""
    image = os.environ.get("XR_CONTAINER_IMAGE")
    check(bool(image), "XR_CONTAINER_IMAGE is not set: build the image first "
                       "(tools/container build localhost/xpra-relay:test) and name it there")
    rc = subprocess.call(["podman"] + _podman_runtime() + ["image", "exists", image])
    check(rc == 0, "image %s does not exist (tools/container build %s)" % (image, image))
    return image


def _podman_runtime():
    return ["--runtime", "runc"] if subprocess.call(["sh", "-c", "command -v runc"], stdout=subprocess.DEVNULL) == 0 else []


def _wrapper(run, name, seccomp):
    """A script standing in for the relay binary: `podman run` of the image with the arguments
    the harness gives the relay. The run dir is mounted at the same path, so the auth database
    the harness writes is where the relay's --tcp-auth says; the host network lets the relay reach
    the sessions' tcp ports on 127.0.0.1 and the client reach the relay."""
    cidfile = run.path("%s.cid" % name)
    argv = ["podman"] + _podman_runtime() + [
        "run", "--rm", "--cidfile", cidfile, "--network", "host",
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
        "-v", "%s:%s" % (run.dir, run.dir)]
    if seccomp:
        argv += ["--security-opt", "seccomp=%s" % seccomp]
    argv.append(_image())
    path = run.path("%s.sh" % name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(harness._quote(a) for a in argv))
    os.chmod(path, 0o755)
    return path, cidfile


def _remove(cidfile):
    """Removes the container this test started (by the id podman wrote), if it is still there."""
    try:
        cid = open(cidfile).read().strip()
    except OSError:
        return
    if cid:
        subprocess.call(["podman"] + _podman_runtime() + ["rm", "-f", "-t", "5", cid],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def _relay_host_pid(cidfile):
    """The relay's pid on the host: the container's init process."""
    cid = open(cidfile).read().strip()
    out = subprocess.run(["podman"] + _podman_runtime() + ["inspect", "--format", "{{.State.Pid}}", cid],
                         capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "podman inspect failed: %s" % out.stderr)
    return int(out.stdout.strip())


def _status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


@contextlib.contextmanager
def _container_setup(run, name, seccomp):
    wrapper, cidfile = _wrapper(run, name, seccomp)
    saved = run.relay_bin
    run.relay_bin = wrapper
    try:
        with harness.Setup(run, auth="sqlite", name=name) as setup:
            srv = setup.server()
            # The relay in the container runs as its own user: it reaches the session over tcp.
            setup.user("alice", "alice-pw", [srv], via="tcp")
            setup.start()
            yield setup, cidfile
    finally:
        run.relay_bin = saved
        _remove(cidfile)


def _attach_and_stop(run, setup, cidfile):
    srv = setup.servers[0]
    pid = _relay_host_pid(cidfile)
    st = _status(pid)
    check(st["Uid"][0] == str(CONTAINER_UID), "the relay runs as uid %s, not the image's user %d" % (st["Uid"][0], CONTAINER_UID))
    check(st["NSpid"][-1] == "1", "the relay is not PID 1 in its container (NSpid %s)" % st["NSpid"])
    check(harness.read_text(open("/proc/%d/comm" % pid).name).strip() == "xpra-relay",
          "the container's PID 1 is not the relay")
    with setup.client("alice", "alice-pw", display=srv.display) as c:
        harness.assert_window_painted(c, srv.title, save_as="container-%s.png" % setup.name)
        c.assert_attached()
    # SIGTERM reaches the relay (podman forwards it): a graceful stop, exit status 0.
    gate = setup.gate
    gate.proc.signal_group(15)
    rc = gate.proc.wait(30)
    check(rc == 0, "the container exited with %s after SIGTERM:\n%s" % (rc, harness.log_tail(gate.log, 20)))
    check("stopped" in harness.read_text(gate.log), "no graceful stop in the relay's log:\n%s" % harness.log_tail(gate.log, 20))


def _backend_line(setup):
    log = harness.read_text(setup.gate.log)
    lines = [l for l in log.splitlines() if "I/O backend" in l or "using epoll" in l]
    return log, (lines[0] if lines else "")


@harness.targets("relay")
def test_container_default_seccomp_uses_epoll(run, fx):
    """podman's DEFAULT seccomp profile (no io_uring): the relay says why it runs epoll, and a
    real client attaches through it."""
    with _container_setup(run, "ctr-default", None) as (setup, cidfile):
        log, line = _backend_line(setup)
        check("io_uring blocked by seccomp" in line and "using epoll" in line,
              "no start-up line naming the seccomp filter and epoll:\n%s" % harness.log_tail(setup.gate.log, 20))
        check("seccomp-io_uring.json" in line, "the start-up line does not name the fix: %s" % line)
        _attach_and_stop(run, setup, cidfile)


@harness.targets("relay")
def test_container_io_uring_profile_attach(run, fx):
    """deploy/seccomp-io_uring.json (podman's default plus io_uring): the relay runs io_uring and a
    real client attaches through it."""
    with _container_setup(run, "ctr-uring", IO_URING_PROFILE) as (setup, cidfile):
        log, line = _backend_line(setup)
        check("I/O backend: io_uring" in line, "io_uring is not the backend under the io_uring profile: %s\n%s"
              % (line, harness.log_tail(setup.gate.log, 20)))
        _attach_and_stop(run, setup, cidfile)

"""The deployment files are well-formed and name only what the relay accepts.

    deploy_test.py RELAY K8S_YAML SECCOMP_JSON CONTAINERFILE ENTRYPOINT

- deploy/kubernetes/xpra-relay.yaml parses (PyYAML), has the Secret, Deployment and Service, the
  Service publishes 443 onto the container's port, the pod runs non-root with no capability,
  a Localhost seccomp profile, and every relay option in its args is one `xpra-relay --help` lists.
- deploy/seccomp-io_uring.json is podman's default profile (containers-common, when installed)
  with exactly io_uring_setup, io_uring_enter and io_uring_register added.
- deploy/Containerfile's runtime stage runs as a non-root user and its entry point is the script
  that execs the relay; every relay option the entry point passes exists.
"""

import json
import re
import subprocess
import sys

import yaml

IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def relay_options(relay):
    out = subprocess.run([relay, "--help"], capture_output=True, text=True, timeout=30)
    opts = set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout + out.stderr))
    check(len(opts) > 10, "xpra-relay --help listed no options: %r" % (out.stdout[:300] + out.stderr[:300]))
    return opts


def check_args(args, opts, where):
    for a in args:
        m = re.match(r"(--[a-z][a-z0-9-]*)", a)
        if m:
            check(m.group(1) in opts, "%s: %s is not an xpra-relay option" % (where, m.group(1)))


def kubernetes(path, opts):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = {d["kind"]: d for d in docs}
    for k in ("Secret", "Deployment", "Service"):
        check(k in kinds, "%s: no %s" % (path, k))
    if "Deployment" not in kinds or "Service" not in kinds:
        return
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot is not true")
    check(psc.get("seccompProfile", {}).get("type") == "Localhost", "pod seccompProfile is not Localhost")
    sysctls = {s["name"]: s["value"] for s in psc.get("sysctls", [])}
    (c,) = spec["containers"]
    csc = c.get("securityContext", {})
    check(csc.get("allowPrivilegeEscalation") is False, "container allowPrivilegeEscalation is not false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "container does not drop ALL capabilities")
    check_args(c.get("args", []), opts, path)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    binds = [int(a.rsplit(":", 1)[1]) for a in c.get("args", []) if a.startswith("--bind-tcp=")]
    check(binds and all(b in ports.values() for b in binds), "the relay's --bind-tcp ports %s are not the container's ports %s" % (binds, ports))
    low = [b for b in binds if b < 1024]
    if low:
        check(int(sysctls.get("net.ipv4.ip_unprivileged_port_start", "1024")) <= min(low),
              "port %d needs net.ipv4.ip_unprivileged_port_start <= %d (or a capability)" % (min(low), min(low)))
    svc = kinds["Service"]["spec"]
    check(any(p["port"] == 443 and p["targetPort"] in ports for p in svc["ports"]),
          "the Service does not publish 443 onto a named container port")
    check(svc["selector"].items() <= kinds["Deployment"]["spec"]["template"]["metadata"]["labels"].items(),
          "the Service selector does not match the pod labels")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    check(vols.get("files", {}).get("secret", {}).get("secretName") == kinds["Secret"]["metadata"]["name"],
          "the files volume is not the Secret")


def seccomp(path):
    ours = json.load(open(path))
    allowed = set()
    for s in ours["syscalls"]:
        if s.get("action") == "SCMP_ACT_ALLOW":
            allowed |= set(s["names"])
    check(IO_URING <= allowed, "%s does not allow %s" % (path, sorted(IO_URING - allowed)))
    check(ours.get("defaultAction") in ("SCMP_ACT_ERRNO",), "%s: defaultAction is %s, not an error" % (path, ours.get("defaultAction")))
    try:
        base = json.load(open("/usr/share/containers/seccomp.json"))
    except OSError:
        return   # containers-common not installed: the profile's own shape is checked above
    base_names = [sorted(s["names"]) for s in base["syscalls"]]
    our_names = [sorted(set(s["names"]) - IO_URING) for s in ours["syscalls"]]
    our_names = [n for n in our_names if n]
    check(our_names == base_names, "%s differs from podman's default profile by more than io_uring" % path)
    check({k: v for k, v in ours.items() if k != "syscalls"} == {k: v for k, v in base.items() if k != "syscalls"},
          "%s: settings other than the syscalls differ from podman's default profile" % path)


def containerfile(path, entry, opts):
    text = open(path).read()
    stages = text.split("\nFROM ")
    check(len(stages) >= 2, "Containerfile is not multi-stage")
    run_stage = stages[-1]
    m = re.search(r"^USER\s+(\S+)", run_stage, re.M)
    check(m is not None and m.group(1) not in ("root", "0"), "the runtime stage does not switch to a non-root user")
    check(re.search(r'^ENTRYPOINT \["/usr/bin/xpra-relay-entrypoint"\]', run_stage, re.M) is not None,
          "the entry point is not the relay's entry script")
    check("exec xpra-relay " in open(entry).read(), "the entry script does not exec the relay (PID 1)")
    check_args(re.findall(r"(--[a-z][a-z0-9-]*)=", open(entry).read()), opts, entry)


def main(argv):
    relay, k8s, prof, cf, entry = argv[1:6]
    opts = relay_options(relay)
    kubernetes(k8s, opts)
    seccomp(prof)
    containerfile(cf, entry, opts)
    for f in failures:
        print("FAIL: %s" % f)
    print("deploy_test: %d check(s) failed" % len(failures) if failures else "deploy_test: ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

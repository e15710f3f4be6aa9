#!/usr/bin/python3
"""seccomp_exec.py ERRNO PROGRAM ARGS...: runs PROGRAM under a seccomp filter that answers
io_uring_setup, io_uring_enter and io_uring_register with ERRNO (ENOSYS as podman's and CRI-O's
default profiles do, EPERM as Docker 25+ and containerd 2 do) and allows everything else.
`ERRNO` "none" installs a filter that blocks only acct(2): a seccomp filter is active but
io_uring is not touched. Needs Debian's python3-seccomp (libseccomp's bindings)."""
import errno
import os
import sys

import seccomp

code, argv = sys.argv[1], sys.argv[2:]
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)  # sets no_new_privs, as runtimes do
if code == "none":
    f.add_rule(seccomp.ERRNO(errno.EPERM), "acct")
else:
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        f.add_rule(seccomp.ERRNO(getattr(errno, code)), name)
f.load()
os.execv(argv[0], argv)

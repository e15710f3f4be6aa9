#!/usr/bin/python3
"""Runs the xpra-relay interop suite against real xpra 3.1.3.

    /usr/bin/python3 tests/interop/run.py [--filter K] [--target relay|direct|proxy] [--keep] [--list]

Prints `PASS name (secs)` / `FAIL name: reason` (with log tails) / `SKIP name: why` per test and
ends with `INTEROP_RESULT passed=N failed=M`. Exit status 1 when any test failed.
"""

import argparse
import contextlib
import glob
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MODULE_ORDER = ["test_attach", "test_input", "test_multi", "test_errors", "test_aes", "test_auth_files",
                "test_shutdown", "test_hostile"]
LOG_PREFIXES = ("relay", "proxy", "server", "client", "auth-tool")


class Timeout(harness.TestFailure):
    pass


def _alarm(signum, frame):
    raise Timeout("timed out (test time limit)")


def discover(only=None):
    here = os.path.dirname(os.path.abspath(__file__))
    names = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(here, "test_*.py"))]
    names.sort(key=lambda n: (MODULE_ORDER.index(n) if n in MODULE_ORDER else 99, n))
    mods = []
    for n in names:
        if only and n not in only:
            continue
        try:
            m = importlib.import_module(n)
        except Exception:  # noqa: B902 - a broken module is one failure, not a crashed run
            mods.append((n, None, [("import", traceback.format_exc())]))
            continue
        tests = [(name, fn) for name, fn in vars(m).items() if name.startswith("test_") and callable(fn)]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        mods.append((n, m, tests))
    return mods


def logs_since(run, t0):
    out = []
    for root, _dirs, files in os.walk(run.dir):
        for f in sorted(files):
            p = os.path.join(root, f)
            if f.endswith(".log") and f.startswith(LOG_PREFIXES):
                try:
                    if os.path.getmtime(p) >= t0 - 1:
                        out.append(p)
                except OSError:
                    pass
    return out


def sanitizer_message(reports, lines=60):
    """The failure text for sanitizer reports [(path, text)]: each report's head."""
    out = ["sanitizer report(s) from the relay (a sanitized build):"]
    for path, text in reports:
        body = text.rstrip().splitlines()
        out.append("--- %s" % path)
        out += body[:lines] + (["... (%d more lines)" % (len(body) - lines)] if len(body) > lines else [])
    return "\n".join(out)


def report_failure(run, name, err, t0, tb):
    print("FAIL %s: %s" % (name, str(err).strip().replace("\n", "\n    ")))
    if run.verbose or not isinstance(err, harness.TestFailure):
        print("    " + tb.replace("\n", "\n    "))
    for p in logs_since(run, t0):
        print("  --- tail of %s" % p)
        print("    " + harness.log_tail(p, 25).replace("\n", "\n    "))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filter", default="", help="run tests whose 'module.test' name contains this "
                    "(several, comma-separated: any of them)")
    ap.add_argument("--exclude", default="", help="leave out tests whose 'module.test' name contains this "
                    "(several, comma-separated)")
    ap.add_argument("--target", default=os.environ.get("XR_INTEROP_TARGET", "relay"), choices=harness.TARGETS,
                    help="what clients connect to: the relay (default), the xpra server itself, or xpra proxy")
    ap.add_argument("--keep", action="store_true", help="keep the run directory even when everything passed")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks for failures")
    ap.add_argument("--test-timeout", type=int, default=int(os.environ.get("XR_INTEROP_TEST_TIMEOUT", "150")))
    args = ap.parse_args()

    filters = args.filter.split(",")
    mods = discover()
    if args.list:
        for mname, m, tests in mods:
            if m is None:
                print("%s: cannot import" % mname)
                continue
            for tname, fn in tests:
                print("%s.%s  [%s]" % (mname, tname, ",".join(getattr(fn, "targets", harness.TARGETS))))
        return 0

    run = harness.Run(target=args.target, verbose=args.verbose)
    print("interop: target=%s%s run dir %s" % (args.target, " (%s)" % run.relay_bin if args.target == "relay" else "",
                                               run.dir))
    sys.stdout.flush()
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = skipped = 0
    suite_t0 = time.time()
    for mname, m, tests in mods:
        if m is None:
            if any(f in mname or f.split(".")[0] in mname for f in filters):
                print("FAIL %s: cannot import\n    %s" % (mname, tests[0][1].replace("\n", "\n    ")))
                failed += 1
            continue
        excludes = [x for x in args.exclude.split(",") if x]
        selected = [(t, fn) for t, fn in tests if any(f in "%s.%s" % (mname, t) for f in filters)
                    and not any(x in "%s.%s" % (mname, t) for x in excludes)]
        if not selected:
            continue
        mod_targets = getattr(m, "TARGETS", harness.TARGETS)
        if args.target not in mod_targets:
            for t, _fn in selected:
                print("SKIP %s.%s: not for target %s" % (mname, t, args.target))
                skipped += 1
            continue
        applicable = [(t, fn) for t, fn in selected if args.target in getattr(fn, "targets", harness.TARGETS)]
        for t, fn in selected:
            if (t, fn) not in applicable:
                print("SKIP %s.%s: not for target %s" % (mname, t, args.target))
                skipped += 1
        if not applicable:
            continue
        run.set_logdir(mname)
        t0 = time.time()
        fixture = getattr(m, "fixture", None)
        stack = contextlib.ExitStack()
        try:
            signal.alarm(args.test_timeout)
            fx = stack.enter_context(fixture(run)) if fixture else None
            signal.alarm(0)
        except BaseException as e:  # noqa: B902 - report and go on with the next module
            signal.alarm(0)
            tb = traceback.format_exc()
            with contextlib.suppress(BaseException):
                stack.close()
            msg = "module fixture failed: %s" % e
            reports = run.sanitizer_reports()
            if reports:
                msg += "\n" + sanitizer_message(reports)
            for t, _fn in applicable:
                report_failure(run, "%s.%s" % (mname, t), msg, t0, tb)
                failed += 1
            if isinstance(e, KeyboardInterrupt):
                break
            continue
        try:
            for t, fn in applicable:
                name = "%s.%s" % (mname, t)
                t1 = time.time()
                outcome, err, tb, info = "pass", None, "", None
                try:
                    signal.alarm(args.test_timeout)
                    info = fn(run, fx)
                except harness.TestSkip as e:
                    outcome, err = "skip", e
                except KeyboardInterrupt:
                    signal.alarm(0)
                    raise
                except BaseException as e:  # noqa: B902
                    outcome, err, tb = "fail", e, traceback.format_exc()
                finally:
                    signal.alarm(0)
                # A sanitizer report written during the test fails it, whatever the test saw.
                reports = run.sanitizer_reports()
                if reports:
                    msg = sanitizer_message(reports)
                    if outcome == "fail":
                        msg = "%s\n%s%s" % (err, "" if isinstance(err, harness.TestFailure) else tb, msg)
                    err = harness.TestFailure(msg)
                    outcome = "fail"
                if outcome == "pass":
                    print("PASS %s (%.1fs)" % (name, time.time() - t1))
                    if info and args.verbose:
                        print("    " + str(info).replace("\n", "\n    "))
                    passed += 1
                elif outcome == "skip":
                    print("SKIP %s: %s" % (name, err))
                    skipped += 1
                else:
                    report_failure(run, name, err, t1, tb)
                    failed += 1
                sys.stdout.flush()
        finally:
            signal.alarm(30)
            try:
                stack.close()
            except Timeout:
                print("warning: %s fixture cleanup timed out" % mname)
            finally:
                signal.alarm(0)
        # The fixture's relays have exited now: LeakSanitizer (and anything else reported at
        # exit) fails the module as one more failure.
        reports = run.sanitizer_reports()
        if reports:
            report_failure(run, "%s (fixture teardown)" % mname, harness.TestFailure(sanitizer_message(reports)),
                           t0, "")
            failed += 1
            sys.stdout.flush()
    keep = args.keep or failed > 0
    print("interop: %d passed, %d failed, %d skipped in %.0fs; logs %s" % (
        passed, failed, skipped, time.time() - suite_t0, run.dir if keep else "(removed)"))
    harness.cleanup_run_dir(run, keep)
    print("INTEROP_RESULT passed=%d failed=%d" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

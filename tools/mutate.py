#!/usr/bin/env python3
"""Mutation testing for gimp-ldm: plants each small mistake of a committed
list (tools/mutations.txt) alone in a scratch copy of the source tree,
rebuilds it incrementally, runs the tests, and reports per mutation whether
the tests caught it (and which test), whether it survived, or whether the
list declares it equivalent (a change that cannot alter behaviour, with the
reason written in the list).

    tools/mutate.py --budget-minutes 90            # the whole list
    tools/mutate.py --only gn-eps-ignored,st-end-plus-one
    tools/mutate.py --check                        # validate the list only
    tools/mutate.py --gimp                         # plug-in mutants too

Standard library only; not part of the default CI run (see docs/testing.md).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIST = os.path.join(ROOT, "tools", "mutations.txt")
DEFAULT_SCRATCH = os.path.join("/tmp", "ldm-mutate-%d" % os.getuid())
# the suites of the default run (tools/run-tests.sh) less gimp
DEFAULT_SUITES_EXCLUDED = ["slow", "quality", "gimp"]
GIMP_CHROOT = os.environ.get("LDM_CHROOT", "/var/cache/gimp-ldm/trixie")
KEYS = {"file", "search", "replace", "tests", "layer", "why", "equivalent", "gimp"}
BIG = 1 << 20  # files this large are hard-linked into the scratch copy


class Mutation:
    def __init__(self, mid, line):
        self.id, self.line = mid, line
        self.file = self.search = self.replace = None
        self.tests, self.layer, self.why, self.equivalent = [], "", "", ""
        self.gimp = False
        # filled in by the run
        self.result, self.caught_by, self.note, self.seconds = "not run", [], "", 0.0


def parse_list(path):
    """Blocks `[id]` followed by `key: value` lines; values are taken
    verbatim after 'key: ' (no quoting, no escapes), so search/replace are
    exact source text. '#' starts a comment line."""
    muts, cur, errors = [], None, []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("[") and line.rstrip().endswith("]"):
                cur = Mutation(line.strip()[1:-1], n)
                muts.append(cur)
                continue
            key, sep, val = line.partition(": ")
            if cur is None or not sep or key not in KEYS:
                errors.append("%s:%d: not '[id]' or 'key: value' with a known key: %s" % (path, n, line))
                continue
            if key == "tests":
                cur.tests = val.split()
            elif key == "gimp":
                cur.gimp = val.strip() in ("yes", "true", "1")
            else:
                setattr(cur, key, val)
    seen = set()
    for m in muts:
        if m.id in seen:
            errors.append("%s:%d: duplicate id %s" % (path, m.line, m.id))
        seen.add(m.id)
        if m.file is None or m.search is None or m.replace is None:
            errors.append("%s:%d: %s needs file, search and replace" % (path, m.line, m.id))
        elif m.search == m.replace:
            errors.append("%s:%d: %s: replace equals search" % (path, m.line, m.id))
    return muts, errors


def locate(m, tree):
    """None when the search text occurs exactly once in the file, else the
    reason (stale: gone from the source; ambiguous: more than once)."""
    p = os.path.join(tree, m.file)
    if not os.path.isfile(p):
        return "stale", "file %s not found" % m.file
    n = open(p, encoding="utf-8").read().count(m.search)
    if n == 0:
        return "stale", "search text no longer in %s" % m.file
    if n > 1:
        return "ambiguous", "search text occurs %d times in %s" % (n, m.file)
    return None


def log(msg):
    print(msg, flush=True)


def run(cmd, cwd=None, timeout=None, env=None):
    return subprocess.run(cmd, cwd=cwd, timeout=timeout, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sync_tree(src, dst):
    """Copies the checkout's files (tracked, and untracked ones git does not
    ignore) into dst, only those whose content differs, so the scratch build
    stays incremental across runs. A copy gets the current time as its
    mtime (a source file's own older mtime would let ninja keep objects
    built from a newer scratch copy, e.g. a mutant's). Large files (models,
    goldens) are hard-linked: mutations only ever replace small source
    files, and always by rename, never in place."""
    out = run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=src)
    if out.returncode != 0:
        sys.exit("mutate: git ls-files failed in %s:\n%s" % (src, out.stdout))
    files = [f for f in out.stdout.split("\0") if f]
    copied = 0
    for rel in files:
        s, d = os.path.join(src, rel), os.path.join(dst, rel)
        if os.path.islink(s):  # the same (relative) link
            target = os.readlink(s)
            if not os.path.islink(d) or os.readlink(d) != target:
                os.makedirs(os.path.dirname(d), exist_ok=True)
                if os.path.lexists(d):
                    if os.path.isdir(d) and not os.path.islink(d):
                        shutil.rmtree(d)
                    else:
                        os.unlink(d)
                os.symlink(target, d)
                copied += 1
            continue
        if not os.path.isfile(s):
            continue
        st = os.stat(s)
        if os.path.isfile(d) and not os.path.islink(d):
            if os.path.samefile(s, d):
                continue
            if os.path.getsize(d) == st.st_size:
                with open(s, "rb") as a, open(d, "rb") as b:
                    if a.read() == b.read():
                        continue
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if os.path.lexists(d):
            os.unlink(d)
        if st.st_size >= BIG:
            try:
                os.link(s, d)
                copied += 1
                continue
            except OSError:
                pass
        shutil.copyfile(s, d)
        shutil.copymode(s, d)
        copied += 1
    return len(files), copied


def write_atomic(path, text):
    tmp = path + ".mutate-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


def meson_test(build, names=None, suites_excluded=None, suites=None, timeout=None):
    """Runs meson test; returns (failed test names, all run test names)."""
    cmd = ["meson", "test", "-C", build, "--no-rebuild", "--num-processes", "2"]
    for s in suites_excluded or []:
        cmd += ["--no-suite", s]
    for s in suites or []:
        cmd += ["--suite", s]
    cmd += names or []
    logf = os.path.join(build, "meson-logs", "testlog.json")
    if os.path.exists(logf):
        os.unlink(logf)
    try:
        r = run(cmd, timeout=timeout)
        out = r.stdout
    except subprocess.TimeoutExpired as e:
        return ["(timeout after %ds)" % timeout], [], str(e)
    failed, ran = [], []
    if os.path.exists(logf):
        for line in open(logf, encoding="utf-8"):
            rec = json.loads(line)
            name = rec["name"].split(" / ")[-1]  # "gimp-ldm:unit / ops" -> "ops"
            ran.append(name)
            if rec.get("result") not in ("OK", "EXPECTEDFAIL"):
                failed.append(name + ("" if rec.get("result") == "FAIL" else " (%s)" % rec.get("result", "?").lower()))
    elif r.returncode != 0:
        failed.append("(meson test: %s)" % out.strip().splitlines()[-1:])
    return failed, ran, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", default=DEFAULT_LIST, help="mutation list (default tools/mutations.txt)")
    ap.add_argument("--budget-minutes", type=float, default=120.0,
                    help="start no new mutant after this many minutes (default 120)")
    ap.add_argument("--only", default="", help="comma-separated mutation ids")
    ap.add_argument("--layer", default="", help="only mutations of this layer")
    ap.add_argument("--scratch", default=DEFAULT_SCRATCH,
                    help="scratch folder outside the checkout, kept for the next run (default %(default)s)")
    ap.add_argument("--gimp", action="store_true",
                    help="also run the plug-in mutants with the gimp suite (needs the chroot; long)")
    ap.add_argument("--quick", action="store_true",
                    help="survivors are not re-run against every default suite")
    ap.add_argument("--check", action="store_true", help="validate the list against the tree and exit")
    ap.add_argument("--report", default="", help="also write the table as Markdown to this file")
    ap.add_argument("--test-timeout", type=int, default=900, help="seconds for one meson test call")
    args = ap.parse_args()

    muts, errors = parse_list(args.list)
    for e in errors:
        log("list error: " + e)
    if errors:
        return 2
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {m.id for m in muts}
        if unknown:
            log("unknown mutation ids: " + ", ".join(sorted(unknown)))
            return 2
        muts = [m for m in muts if m.id in want]
    if args.layer:
        muts = [m for m in muts if m.layer == args.layer]
    for m in muts:
        bad = locate(m, ROOT)
        if bad:
            m.result, m.note = bad
    if args.check:
        for m in muts:
            log("%-28s %-10s %s" % (m.id, m.result if m.result != "not run" else "ok", m.note))
        return 1 if any(m.result in ("stale", "ambiguous") for m in muts) else 0

    scratch = os.path.abspath(args.scratch)
    if scratch == ROOT or scratch.startswith(ROOT + os.sep):
        sys.exit("mutate: the scratch folder must lie outside the checkout")
    src = os.path.join(scratch, "src")
    build = os.path.join(src, "build-mutate")
    os.makedirs(src, exist_ok=True)
    t0 = time.time()
    n, c = sync_tree(ROOT, src)
    log("scratch copy %s: %d files, %d copied" % (src, n, c))
    if not os.path.isdir(os.path.join(build, "meson-private")):
        r = run(["meson", "setup", build, src])
        if r.returncode != 0:
            sys.exit("mutate: meson setup failed:\n" + r.stdout[-3000:])
    r = run(["ninja", "-C", build])
    if r.returncode != 0:
        sys.exit("mutate: the unmutated tree does not build:\n" + r.stdout[-3000:])
    have_chroot = os.path.isdir(GIMP_CHROOT)
    gimp_on = args.gimp and have_chroot
    log("baseline: default suites on the unmutated tree ...")
    base_failed, base_ran, _ = meson_test(build, suites_excluded=DEFAULT_SUITES_EXCLUDED,
                                          timeout=args.test_timeout)
    if gimp_on:
        gf, gr, _ = meson_test(build, suites=["gimp"], timeout=3 * args.test_timeout)
        base_failed += gf
        base_ran += gr
    if base_failed:
        log("baseline failures (not counted as catches): " + ", ".join(base_failed))
    base_bad = {f.split(" (")[0] for f in base_failed}
    log("baseline done in %.0f s; %d tests" % (time.time() - t0, len(base_ran)))

    deadline = t0 + args.budget_minutes * 60
    for i, m in enumerate(muts, 1):
        if m.result in ("stale", "ambiguous"):
            log("[%d/%d] %s: %s (%s)" % (i, len(muts), m.id, m.result, m.note))
            continue
        if m.gimp and not gimp_on:
            m.result = "not run"
            m.note = "plug-in mutant: needs --gimp" + ("" if have_chroot else " and the chroot (%s)" % GIMP_CHROOT)
            continue
        if time.time() > deadline:
            m.note = "budget spent"
            continue
        ts = time.time()
        path = os.path.join(src, m.file)
        orig = open(path, encoding="utf-8").read()
        write_atomic(path, orig.replace(m.search, m.replace, 1))
        try:
            r = run(["ninja", "-C", build], timeout=args.test_timeout)
            if r.returncode != 0:
                m.result, m.note = "build error", r.stdout.strip().splitlines()[-1][:200]
            else:
                flaky = []

                def confirmed(failed, gimp=False):
                    """The failures not already in the baseline that fail
                    again on a re-run of the same mutant (a timing test can
                    fail once on a busy machine)."""
                    failed = [f for f in failed if f.split(" (")[0] not in base_bad]
                    if not failed:
                        return []
                    names = sorted({f.split(" (")[0] for f in failed})
                    again, _, _ = meson_test(build, names=names,
                                             timeout=(3 if gimp else 1) * args.test_timeout)
                    again = {f.split(" (")[0] for f in again}
                    flaky.extend(f for f in failed if f.split(" (")[0] not in again)
                    return [f for f in failed if f.split(" (")[0] in again]

                if m.gimp:
                    failed = confirmed(meson_test(build, suites=["gimp"], timeout=3 * args.test_timeout)[0], True)
                else:
                    failed, ran_sel = [], False
                    if m.tests:
                        failed = confirmed(meson_test(build, names=m.tests, timeout=args.test_timeout)[0])
                        ran_sel = True
                    if not failed and (not args.quick or not ran_sel):
                        # not caught by its selection: every default suite
                        failed = confirmed(meson_test(build, suites_excluded=DEFAULT_SUITES_EXCLUDED,
                                                      timeout=args.test_timeout)[0])
                        if failed and ran_sel:
                            m.note = "missed by its test selection"
                if flaky:
                    m.note = "; ".join(x for x in (m.note, "failed once, passed on re-run: " + ", ".join(flaky)) if x)
                if failed:
                    m.result, m.caught_by = "caught", failed
                    if m.equivalent:
                        m.note = "listed as equivalent, but a test fails: fix the list"
                else:
                    m.result = "equivalent" if m.equivalent else "survived"
                    m.note = "; ".join(x for x in (m.equivalent, m.note) if x)
        except subprocess.TimeoutExpired:
            m.result, m.caught_by = "caught", ["(build/test timeout)"]
        finally:
            write_atomic(path, orig)
        m.seconds = time.time() - ts
        log("[%d/%d] %-28s %-12s %s %s" % (i, len(muts), m.id, m.result, " ".join(m.caught_by),
                                           ("(%s)" % m.note) if m.note else ""))
    run(["ninja", "-C", build])  # leave the scratch build unmutated

    # ---- report
    rows = [(m.id, m.layer, m.file, m.result, ", ".join(m.caught_by) or m.note) for m in muts]
    w = [max(len(r[k]) for r in rows + [("mutation", "layer", "file", "result", "")]) for k in range(4)]
    log("")
    log("%-*s  %-*s  %-*s  %-*s  %s" % (w[0], "mutation", w[1], "layer", w[2], "file", w[3], "result",
                                         "caught by / note"))
    for r in rows:
        log("%-*s  %-*s  %-*s  %-*s  %s" % (w[0], r[0], w[1], r[1], w[2], r[2], w[3], r[3], r[4]))
    caught = sum(m.result == "caught" for m in muts)
    survived = sum(m.result == "survived" for m in muts)
    equiv = sum(m.result == "equivalent" for m in muts)
    other = len(muts) - caught - survived - equiv
    judged = caught + survived
    pct = 100.0 * caught / judged if judged else 0.0
    summary = ("%d mutants: %d caught, %d survived, %d equivalent, %d not judged "
               "(stale, build error, not run); caught %.1f %% of the non-equivalent run (%.0f min)"
               % (len(muts), caught, survived, equiv, other, pct, (time.time() - t0) / 60))
    log("")
    log(summary)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write("| mutation | layer | file | result | caught by / note |\n|---|---|---|---|---|\n")
            for r in rows:
                f.write("| %s | %s | `%s` | %s | %s |\n" % (r[0], r[1], r[2], r[3], r[4].replace("|", "\\|")))
            f.write("\n%s\n" % summary)
    bad = any(m.result in ("stale", "ambiguous", "build error") for m in muts)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

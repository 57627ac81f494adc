#!/usr/bin/env python3
"""The engine's layering, as the build enforces it (DESIGN.md "Layout").

For every layer of engine/ and for the CLI, a probe file that includes one
header of each engine folder is compiled with the exact command the build
uses for that layer's sources (build/compile_commands.json): an include of
a folder below (or of its own) must compile, an upward or sideways include
must fail with "No such file". The CLI must see ldm.h and no engine folder.
Also: no source under engine/ includes by a relative path ("../").
Prints `layers: N probes, N wrong (tol 0)`; exit 1 on any wrong result.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.environ.get("LDM_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LDM_BUILD_ROOT") or os.path.join(ROOT, "build")

FOLDERS = ["core", "ops", "io", "text", "sample", "models", "pipeline"]
# what each layer may include (its own folder and those below), from the design
SEES = {
    "core": {"core"},
    "ops": {"core", "ops"},
    "io": {"core", "ops", "io"},
    "text": {"core", "ops", "io", "text"},
    "sample": {"core", "ops", "io", "sample"},
    "models": {"core", "ops", "io", "models"},
    "pipeline": set(FOLDERS),
    "cli": set(),
}


def probe_header(folder):
    """One header of the folder, as the engine spells it ("models/family.h")."""
    d = os.path.join(ROOT, "engine", folder)
    hs = sorted(glob.glob(os.path.join(d, "*.h"))) or sorted(glob.glob(os.path.join(d, "*", "*.h")))
    if not hs:
        sys.exit(f"layers: engine/{folder} has no header to probe")
    return os.path.relpath(hs[0], os.path.join(ROOT, "engine"))


def layer_command(entries, prefix, target):
    """The build's compile command for the first source under prefix that
    goes into target (the layer's library, not a build-time generator)."""
    for e in entries:
        f = os.path.normpath(os.path.join(e["directory"], e["file"]))
        if (f.startswith(os.path.join(ROOT, prefix) + os.sep) and f.endswith(".c") and
                target in e.get("output", e.get("command", ""))):
            return e
    sys.exit(f"layers: no compile command for a source under {prefix}/ in compile_commands.json")


def probe_command(entry, probe):
    """entry's command compiling `probe` only (-fsyntax-only, no outputs)."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [], 0
    for a in args:
        if skip:
            skip -= 1
            continue
        if a in ("-MQ", "-MF", "-o", "-MT"):
            skip = 1
            continue
        if a in ("-c", "-MD", "-MMD") or a.startswith("-fdiagnostics-color"):
            continue
        out.append(a)
    src = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    out = [a for a in out if os.path.normpath(os.path.join(entry["directory"], a)) != src]
    return out + ["-fsyntax-only", probe]


def main():
    cc_path = os.path.join(BUILD, "compile_commands.json")
    entries = json.load(open(cc_path))
    headers = {f: probe_header(f) for f in FOLDERS}
    n = wrong = 0
    with tempfile.TemporaryDirectory() as tmp:
        for layer, sees in SEES.items():
            if layer == "cli":
                entry = layer_command(entries, "cli", "ldm.p/")
            else:
                entry = layer_command(entries, os.path.join("engine", layer), f"libldm-{layer}.a.p/")
            incs = [("ldm.h", True)] + [(headers[f], f in sees) for f in FOLDERS]
            for hdr, ok in incs:
                probe = os.path.join(tmp, f"probe_{layer}_{hdr.replace('/', '_')}.c")
                with open(probe, "w") as fp:
                    fp.write(f'#include "{hdr}"\nint layers_probe;\n')
                r = subprocess.run(probe_command(entry, probe), cwd=entry["directory"], capture_output=True,
                                   text=True)
                n += 1
                compiled = r.returncode == 0
                missing = "No such file" in r.stderr
                if ok and not compiled:
                    wrong += 1
                    print(f"layers: {layer} cannot include {hdr}, which it may:\n{r.stderr.strip()[:600]}")
                elif not ok and (compiled or not missing):
                    wrong += 1
                    why = "compiles" if compiled else "fails for another reason:\n" + r.stderr.strip()[:600]
                    print(f"layers: {layer} including {hdr} (a layer it must not see) {why}")
    # relative includes would step around the include path
    rel = re.compile(r'^\s*#\s*include\s*[<"]\.\.?/', re.M)
    for path in sorted(glob.glob(os.path.join(ROOT, "engine", "**", "*.[ch]"), recursive=True)):
        n += 1
        text = open(path, encoding="utf-8", errors="replace").read()
        m = rel.search(text)
        if m:
            wrong += 1
            print(f"layers: {os.path.relpath(path, ROOT)} includes by a relative path: {m.group(0).strip()}")
    print(f"layers: {n} probes, {wrong} wrong (tol 0)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

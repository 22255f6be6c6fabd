#!/usr/bin/env python3
"""How many public symbols `import VisualInspection` puts in front of an integrator.

Reads the release build's modules with `swift symbolgraph-extract`: the VisualInspection
module's own public symbols plus those of every module it re-exports (`@_exported import
M`), or of the single declarations it re-exports (`@_exported import struct M.Name`).
Prints the count per module and whether engine names (sgemm, Variable, ThreadPool, ...)
are among them.

    swift build -c release && python3 Benchmarks/Scripts/public_symbols.py [REPOSITORY] [--undocumented]

With --undocumented, also lists the symbols of the project that have no doc comment
(synthesized and inherited members, which have no source location, are not counted).
"""
import glob, json, os, re, subprocess, sys, tempfile

arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
list_undocumented = "--undocumented" in sys.argv
root = os.path.abspath(arguments[0] if arguments else ".")
build = glob.glob(os.path.join(root, ".build", "*-linux-gnu", "release"))[0]
source = open(os.path.join(root, "Sources/VisualInspection/VisualInspection.swift")).read()
whole = re.findall(r"^@_exported import (\w+)$", source, re.M)
scoped = re.findall(r"^@_exported import \w+ (\w+)\.(\w+)$", source, re.M)
flags = ["-I", os.path.join(build, "Modules"), "-target", "x86_64-unknown-linux-gnu", "-minimum-access-level", "public"]
for generated in sorted(glob.glob(os.path.join(build, "*.build", "module.modulemap"))):  # the C targets
    target = os.path.basename(os.path.dirname(generated))[:-len(".build")]
    flags += ["-Xcc", "-fmodule-map-file=" + generated, "-Xcc", "-I%s/Sources/%s/include" % (root, target)]
for system in sorted(glob.glob(os.path.join(root, "Sources", "*", "module.modulemap"))):  # CPNG, CJPEG, CZlib
    flags += ["-Xcc", "-fmodule-map-file=" + system]
out = tempfile.mkdtemp(prefix="symbols-")
names, counts, undocumented = set(), {}, []
for module in ["VisualInspection"] + whole + sorted({m for m, _ in scoped}):
    subprocess.run(["swift", "symbolgraph-extract", "-module-name", module, "-output-dir", out] + flags, check=True)
    keep = None if module in ["VisualInspection"] + whole else {n for m, n in scoped if m == module}
    for path in glob.glob(os.path.join(out, module + ".symbols.json")) + glob.glob(os.path.join(out, module + "@*.symbols.json")):
        for symbol in json.load(open(path))["symbols"]:
            components = symbol.get("pathComponents", [])
            if keep is not None and (not components or components[0] not in keep):
                continue
            counts[module] = counts.get(module, 0) + 1
            names.update(c.split("(")[0] for c in components)
            # Symbols without a source location are synthesized (hash(into:)) or inherited
            # from the standard library's protocol extensions (filter, formatted).
            if not symbol.get("docComment") and symbol.get("location") and symbol["kind"]["identifier"] != "swift.extension":
                undocumented.append("%s: %s %s" % (module, symbol["kind"]["identifier"].replace("swift.", ""), ".".join(components)))
    for path in glob.glob(os.path.join(out, "*.json")):
        os.remove(path)
print("public symbols seen by `import VisualInspection`: %d" % sum(counts.values()))
for module, count in sorted(counts.items()):
    print("  %-18s %d" % (module, count))
for name in ("sgemm", "Variable", "ThreadPool", "AdamW", "Tensor", "FrozenBackbone"):
    print("  %-18s %s" % (name, "exposed" if name in names else "not exposed"))
print("without a doc comment: %d" % len(undocumented))
if list_undocumented:
    for line in sorted(undocumented):
        print("  " + line)

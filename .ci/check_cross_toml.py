#!/usr/bin/env python3
"""Check that a cross.toml uses only keys cross-rs 0.2.x understands, with the right value types, and
names only targets rustc knows. (cross-rs itself needs a container engine, which CI machines lack.)"""
import subprocess
import sys
import tomllib

STR_LIST = "list of strings"
BUILD = {"xargo": bool, "build-std": bool, "zig": (bool, str, dict), "default-target": str,
         "pre-build": (str, STR_LIST), "dockerfile": (str, dict), "env": dict}
TARGET = {"xargo": bool, "build-std": bool, "zig": (bool, str, dict), "image": (str, dict),
          "dockerfile": (str, dict), "pre-build": (str, STR_LIST), "runner": str, "env": dict}
ENV = {"volumes": STR_LIST, "passthrough": STR_LIST}


def ok_type(value, spec):
    specs = spec if isinstance(spec, tuple) else (spec,)
    for s in specs:
        if s == STR_LIST and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True
        if isinstance(s, type) and isinstance(value, s):
            return True
    return False


def check(table, schema, where, errors):
    for key, value in table.items():
        if key not in schema:
            errors.append(f"{where}.{key}: unknown key (cross-rs knows {', '.join(sorted(schema))})")
        elif not ok_type(value, schema[key]):
            errors.append(f"{where}.{key}: wrong type {type(value).__name__}")
        elif key == "env":
            check(value, ENV, f"{where}.env", errors)


path = sys.argv[1]
with open(path, "rb") as f:
    doc = tomllib.load(f)
errors = []
known = set(subprocess.run(["rustc", "--print", "target-list"], capture_output=True, text=True,
                           check=True).stdout.split())
for key in doc:
    if key not in ("build", "target"):
        errors.append(f"{key}: unknown top-level key")
check(doc.get("build", {}), BUILD, "build", errors)
default = doc.get("build", {}).get("default-target")
if default and default not in known:
    errors.append(f"build.default-target: {default} is not a rustc target")
for triple, table in doc.get("target", {}).items():
    if triple not in known:
        errors.append(f"target.{triple}: not a rustc target")
    check(table, TARGET, f"target.{triple}", errors)
for e in errors:
    print(f"{path}: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{path}: valid cross-rs config for {', '.join(doc.get('target', {}))}")

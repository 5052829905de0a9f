"""Bundle figures: verifying the policies/ bundle, an unchanged poll (one 304), and the time from
a new bundle published to it being active on a client (verify, compile, save, swap).

    .venv/bin/python bench/bench_bundle.py [--write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key, verify_bundle  # noqa: E402
from authz.policy_server import serve_in_thread  # noqa: E402
from authz.sync import BundleStore, PolicySync  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        private, public = generate_keys(tmp_path / "keys")
        key, pub = load_private_key(private), load_public_key(public)
        data = build_bundle(ROOT / "policies", key, 1, {})
        verify = timed(lambda: verify_bundle(data, pub), 50)
        published = tmp_path / "published"
        published.mkdir()
        (published / "v1.bundle").write_bytes(data)
        server, url = serve_in_thread(published)
        sync = PolicySync(url, pub, BundleStore(tmp_path / "store"), client=httpx.Client())
        sync.poll()
        unchanged = timed(sync.poll, 200)
        activations = []
        for version in range(2, 12):
            (published / f"v{version}.bundle").write_bytes(build_bundle(ROOT / "policies", key, version, {}))
            t0 = time.perf_counter()
            assert sync.poll()
            activations.append(time.perf_counter() - t0)
        server.shutdown()
    ms = lambda xs: f"{statistics.median(xs) * 1000:.1f} ms"  # noqa: E731
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — policy bundles ({len(data):,} bytes, policies/)",
        "",
        "| figure | median |",
        "|---|---|",
        f"| verify signature and file hashes | {ms(verify)} |",
        f"| unchanged poll (If-None-Match, 304) | {ms(unchanged)} |",
        f"| published to active on the client (download, verify, compile, save, swap) | {ms(activations)} |",
        "",
        "Command: `.venv/bin/python bench/bench_bundle.py`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()

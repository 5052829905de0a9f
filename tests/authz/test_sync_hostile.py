"""A hostile or hijacked policy server, and a local user rolling the policies back, against a real
``PolicySync`` over real HTTP servers on 127.0.0.1 (ephemeral ports, stopped by each test).

Each attack is a test named after it: a gigabyte answer is cut off at the size limit while it
streams (peak memory measured in a child process), a server dripping bytes ends at the poll's
deadline, every validly signed but crafted bundle is refused with a reason while the sync thread
lives on and takes the next good bundle, and an older signed bundle is refused offline and online
once the version floor knows a newer one was active."""

from __future__ import annotations

import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from authz.bundle import (
    MAGIC,
    MAX_BUNDLE_BYTES,
    MAX_VERSION,
    build_bundle,
    generate_keys,
    load_private_key,
    load_public_key,
)
from authz.sync import BundleStore, PolicySync
from tests.support.tls import make_pki

if TYPE_CHECKING:
    from tests.support.tls import TestPKI  # (imported here, pytest would try to collect it)

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
CREATED = "2026-11-01T00:00:00+00:00"
GIB = 1024**3


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def good(keys: tuple[Path, Path]) -> dict[int, bytes]:
    """Validly signed bundles of the real policies, by version."""
    key = load_private_key(keys[0])
    return {v: build_bundle(POLICIES, key, v, {}, created_at=CREATED) for v in (1, 2, 3)}


class Server:
    """An HTTP server on 127.0.0.1 whose every GET is answered by ``answer(handler)``."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None], tls: TestPKI | None = None) -> None:
        self.answer = answer
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    outer.answer(self)
                except OSError:
                    pass  # the client hung up: that is what these tests want

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_port}/current.bundle"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], None], tls: TestPKI | None = None) -> Server:
        started.append(Server(answer, tls))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def serving(holder: dict[str, bytes]) -> Callable[[BaseHTTPRequestHandler], None]:
    """Answers with whatever bundle ``holder["bundle"]`` is at the time, as a static server does."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        body = holder["bundle"]
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        h.end_headers()
        h.wfile.write(body)

    return answer


def sync_for(url: str, keys: tuple[Path, Path], store: Path, read_timeout: float = 5.0, **kw: object) -> PolicySync:
    client = httpx.Client(timeout=httpx.Timeout(read_timeout))
    return PolicySync(url, load_public_key(keys[1]), BundleStore(store), client=client, **kw)  # type: ignore[arg-type]


# ---- size: a gigabyte is never read into memory ------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import httpx
    from authz.bundle import load_public_key
    from authz.sync import BundleStore, PolicySync

    def kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    url, public, store = sys.argv[1:4]
    sync = PolicySync(url, load_public_key(Path(public)), BundleStore(Path(store)),
                      client=httpx.Client(timeout=httpx.Timeout(30.0)))
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = kib("VmRSS")
    started = time.monotonic()
    sync.poll()
    print(json.dumps({"error": sync.state().last_error, "rise_kib": kib("VmHWM") - before,
                      "seconds": time.monotonic() - started}))
    """
)


def poll_in_child(url: str, keys: tuple[Path, Path], store: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(keys[1]), str(store)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def gigabyte(server_: list[Server], with_length: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if with_length:
            h.send_header("Content-Length", str(GIB))
        h.end_headers()  # HTTP/1.0 without a length: the body ends when the server closes
        block = MAGIC + bytes(1024 * 1024 - len(MAGIC))
        while server_[0].sent < GIB:
            h.wfile.write(block)
            server_[0].sent += len(block)

    return answer


def test_gigabyte_response_stops_at_size_limit(server, keys: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: ANN001
    box: list[Server] = []
    box.append(server(gigabyte(box, with_length=False)))
    result = poll_in_child(box[0].url, keys, tmp_path / "store")
    assert f"more than the {MAX_BUNDLE_BYTES} bytes allowed: stopped reading there" in str(result["error"])
    rise_mib = int(result["rise_kib"]) / 1024  # type: ignore[call-overload]
    print(f"gigabyte answer: peak RSS rise {rise_mib:.0f} MiB, {result['seconds']:.2f} s")
    assert rise_mib < 2.5 * MAX_BUNDLE_BYTES / 2**20  # the old whole read: over 1,024 MiB
    time.sleep(0.2)
    assert box[0].sent < GIB / 4  # the client hung up long before the gigabyte


def test_gigabyte_content_length_refused_before_reading(server, keys: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: ANN001
    box: list[Server] = []
    box.append(server(gigabyte(box, with_length=True)))
    result = poll_in_child(box[0].url, keys, tmp_path / "store")
    assert f"policy server offers {GIB} bytes, more than the {MAX_BUNDLE_BYTES} allowed" in str(result["error"])
    assert int(result["rise_kib"]) < 16 * 1024  # type: ignore[call-overload]


# ---- time: a drip-feeding server ends at the poll deadline -------------------------------------


def drip(headers_too: bool, interval: float, stop: threading.Event) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(h: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
            head = MAGIC
        for byte in (head * 1000)[:100000]:
            if stop.wait(interval):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    return answer


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_drip_feed_server_hits_poll_deadline(
    server,
    keys: tuple[Path, Path],
    tmp_path: Path,
    headers_too: bool,  # noqa: ANN001
) -> None:
    stop = threading.Event()
    s = server(drip(headers_too, interval=0.5, stop=stop))
    sync = sync_for(s.url, keys, tmp_path / "store", read_timeout=3.0, poll_deadline=2.0)
    started = time.monotonic()
    try:
        assert not sync.poll()  # every read gets a byte within 0.5 s: no per-read timeout fires
    finally:
        elapsed = time.monotonic() - started
        stop.set()
    print(f"drip ({'headers' if headers_too else 'body'}): poll ended after {elapsed:.2f} s (deadline 2 s)")
    assert 1.9 < elapsed < 2.8
    assert "did not finish answering within the poll deadline of 2 s" in sync.state().last_error


def test_drip_feed_over_tls_hits_poll_deadline(server, keys: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: ANN001
    pki = make_pki(tmp_path / "pki")
    stop = threading.Event()
    s = server(drip(headers_too=False, interval=0.5, stop=stop), tls=pki)
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca_cert)), timeout=httpx.Timeout(3.0))
    sync = PolicySync(
        s.url, load_public_key(keys[1]), BundleStore(tmp_path / "store"), client=client, poll_deadline=2.0
    )
    started = time.monotonic()
    try:
        assert not sync.poll()
    finally:
        elapsed = time.monotonic() - started
        stop.set()
    assert 1.9 < elapsed < 2.8, elapsed
    assert "did not finish answering within the poll deadline of 2 s" in sync.state().last_error


def test_silent_server_hits_poll_deadline_not_read_timeout(server, keys: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: ANN001
    stop = threading.Event()
    s = server(lambda h: stop.wait(30))
    sync = sync_for(s.url, keys, tmp_path / "store", read_timeout=20.0, poll_deadline=1.0)
    started = time.monotonic()
    try:
        assert not sync.poll()
    finally:
        elapsed = time.monotonic() - started
        stop.set()
    assert elapsed < 1.8 and "poll deadline of 1 s" in sync.state().last_error


# ---- crafted but validly signed bundles ---------------------------------------------------------


def _manifest(contents: dict[str, bytes], **changes: object) -> dict[str, object]:
    manifest: dict[str, object] = {
        "format": 1,
        "version": 2,
        "created_at": CREATED,
        "min_app_version": "0.1.0",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        "tests": {},
    }
    manifest.update(changes)
    return manifest


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _sparse_member(name: str) -> bytes:
    """A GNU sparse header claiming 8 GiB of zeros around one 512-byte block actually stored."""
    info = tarfile.TarInfo(name)
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 512
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    real = 8 * GIB - 1
    header[386:398] = b"%011o\0" % (real - 512)  # the one stored block sits at the end
    header[398:410] = b"%011o\0" % 512
    header[483:495] = b"%011o\0" % real
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + bytes(512)


def _pax_sparse_member(name: str) -> bytes:
    """A PAX (GNU sparse 1.0) member: a regular-file type whose extended header claims 8 GiB."""
    real = 8 * GIB - 1
    sparse_map = f"1\n{real - 512}\n512\n".encode().ljust(512, b"\0")
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(sparse_map) + 512
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(real),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(sparse_map + bytes(512)))
    return out.getvalue()[: -2 * 512]  # without the end-of-archive blocks


def signed(
    keys: tuple[Path, Path], manifest: bytes, members: list[tuple[tarfile.TarInfo, bytes]], raw: bytes = b""
) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in [_member("manifest.json", manifest), *members]:
            tar.addfile(info, io.BytesIO(data))
        if raw:
            tar.fileobj.write(raw)  # type: ignore[union-attr]
            tar.offset += len(raw)
    payload = out.getvalue()
    return MAGIC + load_private_key(keys[0]).sign(payload) + payload


def crafted(keys: tuple[Path, Path], attack: str) -> bytes:
    policy = (POLICIES / "resources" / "patient_record.yaml").read_bytes()
    files = {"resources/patient_record.yaml": policy}
    members = [_member(n, d) for n, d in files.items()]

    def with_manifest(**changes: object) -> bytes:
        return signed(keys, json.dumps(_manifest(files, **changes)).encode(), members)

    match attack:
        case "sparse_member":
            return signed(
                keys, json.dumps(_manifest({**files, "big.yaml": b""})).encode(), members, _sparse_member("big.yaml")
            )
        case "pax_sparse_member":
            listed = json.dumps(_manifest({**files, "big.yaml": b""})).encode()
            return signed(keys, listed, members, _pax_sparse_member("big.yaml"))
        case "manifest_is_a_list":
            return signed(keys, b"[1, 2, 3]", members)
        case "manifest_is_a_string":
            return signed(keys, b'"version 2"', members)
        case "manifest_nested_100000_deep":
            return signed(keys, b"[" * 100000 + b"]" * 100000, members)
        case "version_true":
            return with_manifest(version=True)
        case "version_10_pow_400":
            return signed(
                keys, json.dumps(_manifest(files)).replace('"version": 2', '"version": 1' + "0" * 400).encode(), members
            )
        case "version_negative":
            return with_manifest(version=-2)
        case "version_float":
            return with_manifest(version=2.0)
        case "version_string":
            return with_manifest(version="2")
        case "version_2_pow_53":
            return with_manifest(version=MAX_VERSION + 1)
        case "files_is_a_list":
            return with_manifest(files=list(files))
        case "created_at_without_offset":
            return with_manifest(created_at="2026-11-01T00:00:00")
        case "min_app_version_5000_digits":
            return with_manifest(min_app_version="9" * 5000)
        case "entry_named_dot":
            return signed(keys, json.dumps(_manifest({".": policy})).encode(), [_member(".", policy)])
        case "file_and_directory_of_one_name":
            both = {"resources": policy, "resources/patient_record.yaml": policy}
            return signed(keys, json.dumps(_manifest(both)).encode(), [_member(n, d) for n, d in both.items()])
    raise AssertionError(attack)


ATTACKS = {
    "sparse_member": "bundle entry 'big.yaml' is not a plain relative file",
    "pax_sparse_member": "bundle entry 'big.yaml' is not a plain relative file",
    "manifest_is_a_list": "manifest.json is a JSON list, not an object",
    "manifest_is_a_string": "manifest.json is a JSON str, not an object",
    "manifest_nested_100000_deep": "manifest.json is not JSON",
    "version_true": "manifest version True is not an integer from 1 to 9007199254740991",
    "version_10_pow_400": "manifest version a huge number is not an integer from 1",
    "version_negative": "manifest version -2 is not an integer from 1",
    "version_float": "manifest version 2.0 is not an integer from 1",
    "version_string": "manifest version '2' is not an integer from 1",
    "version_2_pow_53": "manifest version 9007199254740992 is not an integer from 1",
    "files_is_a_list": "manifest files must be an object",
    "created_at_without_offset": "is not an ISO date and time with a UTC offset",
    "min_app_version_5000_digits": "is not a version such as 0.1.0",
    "entry_named_dot": "bundle entry '.' is not a plain relative file",
    "file_and_directory_of_one_name": "cannot extract the bundle into",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_crafted_bundle_is_refused_and_the_sync_thread_lives_on(
    server,
    keys: tuple[Path, Path],
    good: dict[int, bytes],
    tmp_path: Path,
    attack: str,  # noqa: ANN001
) -> None:
    holder = {"bundle": good[1]}
    s = server(serving(holder))
    sync = sync_for(s.url, keys, tmp_path / "store")
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), kwargs={"interval": 0.05, "max_backoff": 0.1}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sync.state().version == 1)
        holder["bundle"] = crafted(keys, attack)
        wait_for(lambda: ATTACKS[attack] in sync.state().last_error, what=lambda: sync.state().last_error)
        time.sleep(0.2)  # a few more polls of the crafted bundle
        assert thread.is_alive() and sync.state().version == 1 and sync.engine is not None
        assert "unexpected" not in sync.state().last_error  # refused by name, not caught as a crash
        holder["bundle"] = good[2]
        wait_for(lambda: sync.state().version == 2 and sync.state().last_error == "")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(5)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: Callable[[], object] = lambda: "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out; last seen: {what()}"
        time.sleep(0.02)


# ---- rollback: the floor does not live in active.bundle ---------------------------------------


class MemoryFloor:
    """The simplest ``VersionFloor``: the audit helper's privileged store plays this part in the app."""

    def __init__(self, highest: int = 0) -> None:
        self._highest = highest

    def highest(self) -> int:
        return self._highest

    def raise_to(self, version: int) -> None:
        self._highest = max(self._highest, version)


def test_older_signed_bundle_replacing_active_bundle_refused_offline(
    server,
    keys: tuple[Path, Path],
    good: dict[int, bytes],
    tmp_path: Path,  # noqa: ANN001
) -> None:
    holder = {"bundle": good[1]}
    s = server(serving(holder))
    floor = MemoryFloor()
    sync = sync_for(s.url, keys, tmp_path / "store", floor=floor)
    assert sync.poll() and floor.highest() == 1
    holder["bundle"] = good[2]
    assert sync.poll() and floor.highest() == 2  # raised after activation

    (tmp_path / "store" / "active.bundle").write_bytes(good[1])  # the local user rolls back
    restarted = sync_for("http://127.0.0.1:9/current.bundle", keys, tmp_path / "store", floor=floor)
    restarted.start_offline()
    assert restarted.engine is None
    said = restarted.state().reason
    assert "bundle version 1 is older than version 2, the highest ever activated" in said
    assert "everything is denied" in said and floor.highest() == 2


def test_same_version_restart_is_not_a_rollback_and_raises_a_fresh_floor(
    keys: tuple[Path, Path], good: dict[int, bytes], tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "active.bundle").write_bytes(good[2])
    floor = MemoryFloor(2)
    sync = sync_for("http://127.0.0.1:9/current.bundle", keys, tmp_path / "store", floor=floor)
    sync.start_offline()
    assert sync.state().version == 2 and sync.engine is not None
    fresh = MemoryFloor()  # e.g. a floor store created after this bundle was installed
    sync_for("http://127.0.0.1:9/current.bundle", keys, tmp_path / "store", floor=fresh).start_offline()
    assert fresh.highest() == 2


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_server_offers_old_version_after_active_bundle_is_lost_refused(
    server,
    keys: tuple[Path, Path],
    good: dict[int, bytes],
    tmp_path: Path,
    damage: str,  # noqa: ANN001
) -> None:
    holder = {"bundle": good[3]}
    s = server(serving(holder))
    floor = MemoryFloor()
    assert sync_for(s.url, keys, tmp_path / "store", floor=floor).poll() and floor.highest() == 3
    active = tmp_path / "store" / "active.bundle"
    if damage == "deleted":
        active.unlink()
    else:
        active.write_bytes(active.read_bytes()[:-1])
    holder["bundle"] = good[1]  # the server, or anyone in the middle, offers an old signed bundle
    restarted = sync_for(s.url, keys, tmp_path / "store", floor=floor)
    restarted.start_offline()
    assert restarted.engine is None
    assert not restarted.poll()
    assert "bundle version 1 is older than version 3, the highest ever activated" in restarted.state().last_error
    assert restarted.engine is None and floor.highest() == 3
    holder["bundle"] = good[3]  # the genuine current bundle is taken again
    assert restarted.poll() and restarted.state().version == 3


def test_floor_that_cannot_be_raised_is_reported_and_the_bundle_stays(
    server,
    keys: tuple[Path, Path],
    good: dict[int, bytes],
    tmp_path: Path,  # noqa: ANN001
) -> None:
    class BrokenFloor(MemoryFloor):
        def raise_to(self, version: int) -> None:
            raise OSError("guard service not answering")

    s = server(serving({"bundle": good[1]}))
    sync = sync_for(s.url, keys, tmp_path / "store", floor=BrokenFloor())
    assert sync.poll() and sync.state().version == 1
    assert "version floor could not be raised: guard service not answering" in sync.state().last_error


@pytest.mark.parametrize("replacement", ["symlink_to_dev_zero", "fifo", "oversized_file"])
def test_active_bundle_replaced_by_endless_file_refused_offline(
    keys: tuple[Path, Path], good: dict[int, bytes], tmp_path: Path, replacement: str
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    active = store / "active.bundle"
    if replacement == "symlink_to_dev_zero":
        active.symlink_to("/dev/zero")  # read whole, it would never end
    elif replacement == "fifo":
        os.mkfifo(active)  # opened for reading, it would wait for a writer forever
    else:
        with active.open("wb") as f:
            f.write(good[1])
            f.truncate(MAX_BUNDLE_BYTES + 1)  # sparse on disk: big to read, cheap to make
    sync = sync_for("http://127.0.0.1:9/current.bundle", keys, store)
    started = time.monotonic()
    sync.start_offline()
    assert time.monotonic() - started < 2
    assert sync.engine is None and "cannot be trusted" in sync.state().reason
    said = {
        "symlink_to_dev_zero": "cannot be read",
        "fifo": "is not a regular file",
        "oversized_file": "bytes, more than the 67108864 allowed",
    }
    assert said[replacement] in sync.state().reason


def test_unreadable_floor_fails_closed_with_the_reason(
    server,
    keys: tuple[Path, Path],
    good: dict[int, bytes],
    tmp_path: Path,  # noqa: ANN001
) -> None:
    class DownFloor(MemoryFloor):
        def highest(self) -> int:
            raise ConnectionRefusedError("guard service not running")

    s = server(serving({"bundle": good[2]}))
    assert sync_for(s.url, keys, tmp_path / "store").poll()  # v2 saved, before the floor broke
    sync = sync_for(s.url, keys, tmp_path / "store", floor=DownFloor())
    sync.start_offline()
    assert sync.engine is None
    assert "the version floor cannot be read (ConnectionRefusedError: guard service not running)" in sync.state().reason
    assert not sync.poll() and sync.engine is None
    assert "cannot be checked against rollback" in sync.state().last_error

"""The audit guard: a small service, run as its own OS user, that keeps what the signed-in user
must not be able to rewrite.

The audit log lives in the user's data directory, so the user (or malware running as the user)
can rewrite it and recompute every hash of the chain: the chain has no key. The guard holds
what the user cannot reach:

- a per-workstation Ed25519 key (``guard.key``, mode 0600 in the guard's own state directory);
  ``guard.pub`` beside it is what verifiers pin;
- every checkpoint it signed, per audit log: (log id, checkpoint number, seq, head hash, time).
  It refuses a checkpoint whose seq goes backwards for a log it knows, or that gives another
  head for a seq it already signed; a new log under the name of a known one is recorded as
  replacing it;
- the highest policy bundle version ever activated (the rollback floor): ``raise_to`` never
  lowers it.

Protocol: one JSON object per line over a Unix socket, one request and one answer per
connection, each bounded in size and time (a slow or silent client is dropped, the next one is
served). Requests: ``public_key``, ``checkpoint`` (log_id, name, seq, head), ``history``
(log_id), ``highest``, ``raise_floor`` (version). Answers: ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``.

Run it with ``python -m authz.guard --state DIR --socket PATH`` as its own OS user (the Debian
package runs it as the ``ccc-guard`` system user: packaging/debian/ccc-guard.service).
``GuardClient`` is the other end, and also the guard-backed ``VersionFloor`` of ``authz.sync``;
``LocalFloor`` is the fallback without a guard.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import socketserver
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .bundle import BundleError
from .errors import AuthzError

CONTEXT = b"ccc-audit-checkpoint-v1\n"  # signed before the payload: a checkpoint signature means nothing else
MAX_REQUEST = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024  # a history of a long log: about 200 bytes per checkpoint
IO_TIMEOUT = 2.0  # seconds a client has to send its request, and the workstation waits for an answer
MAX_CONNECTIONS = 32  # at once; more are closed at once (a local user cannot hold the guard up)
MAX_VERSION = 2**53  # bundle versions are JSON integers; the floor keeps the same bound
DEFAULT_SOCKET = Path("/run/ccc-guard/guard.sock")  # where an installed guard listens
DEFAULT_PUBLIC_KEY = Path("/var/lib/ccc-guard/guard.pub")


class GuardError(AuthzError):
    """The guard refused a request, or could not be reached."""


class FloorUnavailable(BundleError, GuardError):
    """The rollback floor cannot be read or recorded: the policy sync refuses the bundle (a
    ``BundleError``) rather than activate one it cannot check."""


@dataclass(frozen=True)
class Checkpoint:
    """The guard's signed statement: log ``log_id`` had ``seq`` records ending in ``head`` at ``time``."""

    log_id: str
    number: int  # 1, 2, ... per log, given by the guard: a gap shows a removed checkpoint
    seq: int
    head: str
    time: str
    signature: str = ""  # base64 Ed25519 over CONTEXT + payload()

    def payload(self) -> bytes:
        fields = {"log_id": self.log_id, "number": self.number, "seq": self.seq, "head": self.head, "time": self.time}
        return CONTEXT + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        """A checkpoint from untrusted JSON: every field of its type, or GuardError."""
        if not isinstance(data, dict):
            raise GuardError("a checkpoint must be a JSON object")
        try:
            checkpoint = cls(
                str(data["log_id"]),
                int(data["number"]),
                int(data["seq"]),
                str(data["head"]),
                str(data["time"]),
                str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GuardError(f"not a checkpoint: {exc!r:.200}") from None
        for name in ("number", "seq"):
            if isinstance(data[name], bool) or not isinstance(data[name], int):
                raise GuardError(f"not a checkpoint: {name} must be an integer")
        return checkpoint


@dataclass
class LogHistory:
    """What the guard knows of one log: its checkpoints, and the logs it replaced or that replaced it."""

    log_id: str
    known: bool
    name: str = ""
    first_seen: str = ""
    checkpoints: list[Checkpoint] = field(default_factory=list)
    replaces: str = ""  # the log that had this name before, and its last checkpointed seq
    replaces_seq: int = 0
    replaced_by: str = ""  # a later log under the same name


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# ---- the service ------------------------------------------------------------------------------


class GuardService:
    """The guard's state and key, and the answer to each request (transport apart, for tests)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)  # guard.pub is for everyone; the rest 0600
        self.key = self._load_or_create_key(state_dir / "guard.key")
        (state_dir / "guard.pub").write_text(public_key_pem(self.key.public_key()))
        os.chmod(state_dir / "guard.pub", 0o644)
        db = state_dir / "guard.db"
        if not db.exists():
            os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS log (log_id TEXT PRIMARY KEY, name TEXT NOT NULL, first_seen TEXT NOT NULL,
                replaces TEXT NOT NULL DEFAULT '', replaces_seq INTEGER NOT NULL DEFAULT 0,
                replaced_by TEXT NOT NULL DEFAULT '');
            CREATE TABLE IF NOT EXISTS checkpoint (log_id TEXT NOT NULL, number INTEGER NOT NULL,
                seq INTEGER NOT NULL, head TEXT NOT NULL, time TEXT NOT NULL, signature TEXT NOT NULL,
                PRIMARY KEY (log_id, number));
            CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY CHECK (id = 1), highest INTEGER NOT NULL);
            """
        )
        self._lock = threading.Lock()

    @staticmethod
    def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise GuardError(f"{path}: not an Ed25519 private key")
            return key
        key = Ed25519PrivateKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            f.flush()
            os.fsync(f.fileno())
        return key

    def handle(self, request: Any) -> dict[str, Any]:
        """One request's answer; a bad request gets ``ok: false`` and the reason, never an exception."""
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": "a request is a JSON object with an op"}
        handler = getattr(self, f"_op_{request['op']}", None)
        if handler is None:
            return {"ok": False, "error": f"unknown op {request['op']!r:.40}"}
        try:
            with self._lock:
                answer: dict[str, Any] = handler(request)
        except GuardError as exc:
            return {"ok": False, "error": str(exc)}
        except sqlite3.Error as exc:
            return {"ok": False, "error": f"the guard's state cannot be read or written: {exc}"}
        return {"ok": True, **answer}

    def _op_public_key(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"public_key": public_key_pem(self.key.public_key())}

    def _op_checkpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        log_id, name, head = (_text(request, k) for k in ("log_id", "name", "head"))
        seq = _integer(request, "seq", 0, 2**62)
        if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
            raise GuardError("head must be a SHA-256 hex digest")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            checkpoint = self._checkpoint(log_id, name, seq, head)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return {"checkpoint": checkpoint.to_json()}

    def _checkpoint(self, log_id: str, name: str, seq: int, head: str) -> Checkpoint:
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        if self.db.execute("SELECT 1 FROM log WHERE log_id = ?", (log_id,)).fetchone() is None:
            self._register(log_id, name, now)
        last = self.db.execute(
            "SELECT number, seq, head, time, signature FROM checkpoint WHERE log_id = ? ORDER BY number DESC LIMIT 1",
            (log_id,),
        ).fetchone()
        if last is not None:
            number, last_seq, last_head, last_time, signature = last
            if seq < last_seq:
                raise GuardError(f"refused: log {log_id} already has a checkpoint at record {last_seq}, not {seq}")
            if seq == last_seq:
                if head != last_head:
                    raise GuardError(f"refused: log {log_id} had another head at record {seq} (rewritten?)")
                return Checkpoint(log_id, number, seq, head, last_time, signature)
        checkpoint = Checkpoint(log_id, (last[0] if last else 0) + 1, seq, head, now)
        signature = base64.b64encode(self.key.sign(checkpoint.payload())).decode()
        self.db.execute(
            "INSERT INTO checkpoint VALUES (?, ?, ?, ?, ?, ?)",
            (log_id, checkpoint.number, seq, head, now, signature),
        )
        return Checkpoint(log_id, checkpoint.number, seq, head, now, signature)

    def _register(self, log_id: str, name: str, now: str) -> None:
        """A log seen for the first time; if another log had its name, this one replaces it."""
        previous = self.db.execute(
            "SELECT log_id FROM log WHERE name = ? AND replaced_by = '' ORDER BY first_seen DESC LIMIT 1", (name,)
        ).fetchone()
        replaces, replaces_seq = "", 0
        if previous is not None:
            replaces = previous[0]
            row = self.db.execute("SELECT MAX(seq) FROM checkpoint WHERE log_id = ?", (replaces,)).fetchone()
            replaces_seq = row[0] or 0
            self.db.execute("UPDATE log SET replaced_by = ? WHERE log_id = ?", (log_id, replaces))
        self.db.execute(
            "INSERT INTO log (log_id, name, first_seen, replaces, replaces_seq) VALUES (?, ?, ?, ?, ?)",
            (log_id, name, now, replaces, replaces_seq),
        )

    def _op_history(self, request: dict[str, Any]) -> dict[str, Any]:
        log_id = _text(request, "log_id")
        row = self.db.execute(
            "SELECT name, first_seen, replaces, replaces_seq, replaced_by FROM log WHERE log_id = ?", (log_id,)
        ).fetchone()
        if row is None:
            return {"history": {"log_id": log_id, "known": False}}
        checkpoints = [
            Checkpoint(log_id, *r).to_json()
            for r in self.db.execute(
                "SELECT number, seq, head, time, signature FROM checkpoint WHERE log_id = ? ORDER BY number",
                (log_id,),
            )
        ]
        name, first_seen, replaces, replaces_seq, replaced_by = row
        return {
            "history": {
                "log_id": log_id,
                "known": True,
                "name": name,
                "first_seen": first_seen,
                "checkpoints": checkpoints,
                "replaces": replaces,
                "replaces_seq": replaces_seq,
                "replaced_by": replaced_by,
            }
        }

    def _highest(self) -> int:
        row = self.db.execute("SELECT highest FROM floor WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def _op_highest(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"highest": self._highest()}

    def _op_raise_floor(self, request: dict[str, Any]) -> dict[str, Any]:
        version = _integer(request, "version", 1, MAX_VERSION)
        highest = self._highest()
        if version < highest:
            raise GuardError(f"refused: version {version} is below the highest ever activated ({highest})")
        self.db.execute(
            "INSERT INTO floor (id, highest) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET highest = excluded.highest",
            (version,),
        )
        return {"highest": version}

    def close(self) -> None:
        self.db.close()


def _text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise GuardError(f"{name} must be a non-empty string")
    return value


def _integer(request: dict[str, Any], name: str, low: int, high: int) -> int:
    value = request.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GuardError(f"{name} must be an integer from {low} to {high}")
    return value


class _Handler(socketserver.StreamRequestHandler):
    timeout = IO_TIMEOUT
    server: GuardServer

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
        except OSError:
            return  # too slow or gone: the next client is served
        if len(line) > MAX_REQUEST:
            answer: dict[str, Any] = {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"}
        else:
            try:
                answer = self.server.service.handle(json.loads(line))
            except ValueError:
                answer = {"ok": False, "error": "a request is one JSON object on one line"}
        try:
            self.wfile.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        except OSError:
            pass


class GuardServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per connection, up to MAX_CONNECTIONS at once, each bounded by IO_TIMEOUT: a
    client that connects and sends nothing holds up no one else. Requests are answered one at a
    time (``GuardService.handle`` holds a lock; each answer takes microseconds)."""

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted (a full backlog refuses at once)

    def __init__(self, socket_path: Path, service: GuardService, mode: int = 0o666) -> None:
        self.service = service
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if socket_path.is_socket():
            socket_path.unlink()
        super().__init__(str(socket_path), _Handler)
        os.chmod(socket_path, mode)  # any local user may ask: no request can hide a rewrite

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self._slots.acquire(blocking=False)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve(state_dir: Path, socket_path: Path) -> None:
    service = GuardService(state_dir)
    with GuardServer(socket_path, service) as server:
        try:
            server.serve_forever()
        finally:
            service.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccc-guard", description="the audit guard (run as its own OS user)")
    parser.add_argument("--state", required=True, type=Path, help="the guard's own directory (key, checkpoints)")
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to listen on")
    args = parser.parse_args(argv)
    try:
        serve(args.state, args.socket)
    except KeyboardInterrupt:
        return 0
    except (OSError, sqlite3.Error, GuardError, ValueError) as exc:
        sys.stderr.write(f"ccc-guard: cannot start with state {args.state} on {args.socket}: {exc}\n")
        return 1
    return 0


# ---- the client -------------------------------------------------------------------------------


class GuardClient:
    """The workstation's end of the guard: checkpoints for the audit log, the guard-backed
    ``VersionFloor`` for the policy sync, and a log's history for ``audit verify``.

    With ``public_key`` pinned, every checkpoint the guard returns is checked against it (a fake
    guard on the socket cannot sign)."""

    def __init__(
        self, socket_path: Path, public_key: Ed25519PublicKey | None = None, timeout: float = IO_TIMEOUT
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._public_key = public_key

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        request = json.dumps({"op": op, **args}, separators=(",", ":")).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(str(self.socket_path))
                conn.sendall(request)
                data = _read_line(conn)
        except OSError as exc:
            raise GuardError(f"the audit guard at {self.socket_path} cannot be reached: {exc}") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise GuardError(f"the audit guard at {self.socket_path} answered with something not JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise GuardError(f"the audit guard {error or 'refused'}")
        return answer

    def public_key(self) -> Ed25519PublicKey:
        if self._public_key is None:
            pem = self.call("public_key").get("public_key")
            try:
                key = serialization.load_pem_public_key(str(pem).encode())
            except ValueError:
                raise GuardError("the audit guard's public key is not readable") from None
            if not isinstance(key, Ed25519PublicKey):
                raise GuardError("the audit guard's public key is not Ed25519")
            self._public_key = key
        return self._public_key

    def _signed(self, data: Any) -> Checkpoint:
        checkpoint = Checkpoint.from_json(data)
        if not checkpoint.signed_by(self.public_key()):
            raise GuardError(f"a checkpoint of log {checkpoint.log_id} is not signed by the guard's key")
        return checkpoint

    def checkpoint(self, log_id: str, name: str, seq: int, head: str) -> Checkpoint:
        answer = self.call("checkpoint", log_id=log_id, name=name, seq=seq, head=head)
        return self._signed(answer.get("checkpoint"))

    def history(self, log_id: str) -> LogHistory:
        data = self.call("history", log_id=log_id).get("history")
        if not isinstance(data, dict) or not isinstance(data.get("checkpoints", []), list):
            raise GuardError("the audit guard's history is not well formed")
        return LogHistory(
            log_id,
            data.get("known") is True,
            str(data.get("name", "")),
            str(data.get("first_seen", "")),
            [self._signed(c) for c in data.get("checkpoints", [])],
            str(data.get("replaces", "")),
            int(data.get("replaces_seq", 0) or 0),
            str(data.get("replaced_by", "")),
        )

    def highest(self) -> int:
        """The rollback floor (``authz.sync.VersionFloor``)."""
        try:
            value = self.call("highest").get("highest")
        except GuardError as exc:
            raise FloorUnavailable(f"the rollback floor is unknown: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise FloorUnavailable("the audit guard's rollback floor is not an integer")
        return value

    def raise_to(self, version: int) -> None:
        try:
            self.call("raise_floor", version=version)
        except GuardError as exc:
            raise FloorUnavailable(str(exc)) from None


def _read_line(conn: socket.socket) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > MAX_ANSWER:
            raise OSError(f"answer longer than {MAX_ANSWER} bytes")
    return b"".join(chunks)


def default_guard() -> GuardClient | None:
    """The installed guard (DEFAULT_SOCKET), pinned to its public key; None when there is none."""
    if not DEFAULT_SOCKET.is_socket() or not DEFAULT_PUBLIC_KEY.is_file():
        return None
    try:
        key = serialization.load_pem_public_key(DEFAULT_PUBLIC_KEY.read_bytes())
    except (OSError, ValueError):
        return None
    return GuardClient(DEFAULT_SOCKET, key) if isinstance(key, Ed25519PublicKey) else None


# ---- the fallback floor -----------------------------------------------------------------------


class LocalFloor:
    """The rollback floor without a guard (development, the demo): a file in the user's data
    directory, apart from ``active.bundle``. It stops an older bundle copied over the active one,
    or the active one deleted so the server (or someone in the middle) installs an old version;
    it does not stop the user who also edits this file: only the guard does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def highest(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise FloorUnavailable(f"the rollback floor at {self.path} cannot be read: {exc.strerror or exc}") from None
        if not text.isdigit() or len(text) > 20:
            raise FloorUnavailable(f"the rollback floor at {self.path} is damaged ({text[:20]!r})")
        return int(text)

    def raise_to(self, version: int) -> None:
        if version < self.highest():
            raise FloorUnavailable(f"refused: version {version} is below the highest ever activated ({self.highest()})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".floor-")
            with os.fdopen(fd, "w") as f:
                f.write(f"{version}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise FloorUnavailable(
                f"the rollback floor at {self.path} cannot be written: {exc.strerror or exc}"
            ) from None


if __name__ == "__main__":
    raise SystemExit(main())

"""Everything alicertd keeps on disk, behind one small interface.

Layout (all below ``state_dir``, which is 0700)::

    .lock                                   flock: one process works on a state dir at a time
    account/key.pem                         ACME account key (0600)
    account/account.json                    account URL, directory URL, contact
    archive/NAME/<serial>/privkey.pem       one directory per issued certificate (0600 key)
    archive/NAME/<serial>/fullchain.pem
    archive/NAME/<serial>/meta.json
    certificates/NAME -> ../archive/NAME/<serial>   the current one (contract path:
                                            certificates/NAME/fullchain.pem and privkey.pem)
    pending/NAME.key.pem                    the key of an order in flight, reused after a crash
    deploy/NAME.json                        per target: what was last deployed and verified
    runtime/NAME.json                       last result, error, failure backoff, ARI answer
    journal/dns/<id>.json                   DNS records being created, until cleaned up
    cas/certificates.json                   CAS certificates alicertd uploaded (ids, per account)
    reload.json                             the daemon's last refused config reload (when, why)

Why a symlink per certificate: the key and the chain must change together. Two renames can be
torn apart by a crash; replacing one symlink cannot. Every regular file is written as temp file
+ fsync + rename + fsync(dir), created with its final mode (keys are 0600 from the first byte).
A file that does not parse is reported (StateCorrupt), never silently replaced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIR_MODE = 0o700
KEY_MODE = 0o600
FILE_MODE = 0o600  # nothing in the state dir is for other users; chains included
_TMP_PREFIX = ".tmp-"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class StateError(Exception):
    """A problem with the state directory. One line, names the path, never file contents."""


class StateCorrupt(StateError):
    """A file exists but cannot be read or parsed: an operator must look at it."""


class StateLocked(StateError):
    """Another process holds the state lock past our waiting time."""


# --------------------------------------------------------------------------- low level


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the old file or the new
    one, never a mix: temp file in the same directory, created with ``mode``, fsync, rename,
    fsync the directory."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateCorrupt(f"cannot read {path}: {exc.strerror}") from None


def _read_json(path: Path) -> Any:
    raw = _read_bytes(path)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StateCorrupt(f"{path} is not valid JSON (truncated or edited by hand?); "
                           f"move it away to let alicertd rebuild it") from None


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def check_name(name: str) -> str:
    """Certificate names become path components: refuse anything that is not [a-z0-9-]."""
    if not _NAME_RE.match(name):
        raise StateError(f"invalid certificate name {name!r}")
    return name


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StoredCertificate:
    name: str
    fullchain_pem: str
    key_pem: str
    meta: dict[str, Any]
    path: Path  # the archive directory


class DnsJournal:
    """Crash journal for DNS records: an entry is written (durably) *before* the record is
    created and removed only after the record is gone, so a run that dies in between leaves a
    note that the next run uses to clean up. Entries are small JSON dicts owned by the provider
    (zone, rr, value, record_id once known); the journal only stores them."""

    def __init__(self, root: Path):
        self._dir = root / "journal" / "dns"

    def _ensure(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)

    def add(self, provider: str, entry: dict[str, Any]) -> str:
        self._ensure()
        entry_id = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
        atomic_write(self._dir / f"{entry_id}.json", _json_bytes({"provider": provider, "entry": entry}))
        return entry_id

    def update(self, entry_id: str, entry: dict[str, Any]) -> None:
        path = self._dir / f"{entry_id}.json"
        current = _read_json(path) or {}
        atomic_write(path, _json_bytes({"provider": current.get("provider"), "entry": entry}))

    def remove(self, entry_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._dir / f"{entry_id}.json")
            _fsync_dir(self._dir)

    def entries(self, provider: str) -> dict[str, dict[str, Any]]:
        if not self._dir.is_dir():
            return {}
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(self._dir.glob("*.json")):
            if path.name.startswith(_TMP_PREFIX):
                continue
            data = _read_json(path)
            if isinstance(data, dict) and data.get("provider") == provider:
                found[path.stem] = dict(data.get("entry") or {})
        return found

    def count(self) -> int:
        return len([p for p in self._dir.glob("*.json")]) if self._dir.is_dir() else 0


class CasRecords:
    """The Certificate Management Service (CAS) certificates alicertd uploaded, one record per
    (account, CertId): ``cas/certificates.json``. Written right after every upload, so a crash
    between upload and bind leaves the id behind for the next run (which then never uploads
    again); removed only after CAS confirmed the deletion. The hub in ``providers.cas`` owns
    the record's fields (account, region, cert_id, name, certificate, fingerprint, serial, ...);
    this class only stores them. Thread-safe: deploy providers run in several threads."""

    def __init__(self, root: Path):
        self._path = root / "cas" / "certificates.json"
        self._lock = threading.Lock()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._read()]

    def put(self, entry: dict[str, Any]) -> None:
        """Add ``entry`` or replace the record with the same account and cert_id."""
        with self._lock:
            key = (entry.get("account"), entry.get("cert_id"))
            records = [e for e in self._read() if (e.get("account"), e.get("cert_id")) != key]
            records.append(dict(entry))
            self._write(records)

    def remove(self, account: str, cert_id: int) -> None:
        with self._lock:
            records = self._read()
            kept = [e for e in records if (e.get("account"), e.get("cert_id")) != (account, cert_id)]
            if len(kept) != len(records):
                self._write(kept)

    def _read(self) -> list[dict[str, Any]]:
        data = _read_json(self._path)
        if data is None:
            return []
        items = data.get("certificates") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise StateCorrupt(f"{self._path} is not a CAS record file")
        return [e for e in items if isinstance(e, dict)]

    def _write(self, records: list[dict[str, Any]]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        records.sort(key=lambda e: (str(e.get("account")), int(e.get("cert_id") or 0)))
        atomic_write(self._path, _json_bytes({"certificates": records}))


# --------------------------------------------------------------------------- the store


class StateStore:
    """The state directory. Create it with ``ensure()`` (0700), take ``lock()`` for any work
    that writes, and use only these methods to touch files."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.journal = DnsJournal(self.root)
        self.cas = CasRecords(self.root)

    # -- directory and lock --------------------------------------------------

    def exists(self) -> bool:
        return self.root.is_dir()

    def ensure(self) -> None:
        """Create the state dir 0700 (and refuse one that others can read)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        except OSError as exc:
            raise StateError(f"cannot create state_dir {self.root}: {exc.strerror}") from None
        st = self.root.stat()
        if st.st_mode & 0o077:
            try:
                os.chmod(self.root, DIR_MODE)
            except OSError as exc:
                raise StateError(f"state_dir {self.root} is readable by others and cannot be "
                                 f"fixed: {exc.strerror}") from None
        for sub in ("account", "archive", "certificates", "pending", "deploy", "runtime"):
            (self.root / sub).mkdir(exist_ok=True, mode=DIR_MODE)
        self._sweep_temp_files()

    def _sweep_temp_files(self) -> None:
        """Temp files are never the real file: one left behind is a write that a crash
        interrupted before its rename, so it is safe (and tidy) to remove — but only while
        nobody holds the state lock. ``lock()`` runs this before it waits, and a held lock
        means a live writer (another process, or another thread of this one) whose temp
        file is a write in progress: sweeping it made that writer's rename fail."""
        try:
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, even by us: not now
            except OSError:
                return
            for path in self.root.rglob(f"{_TMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    if path.is_symlink() or path.is_file():
                        path.unlink()
        finally:
            os.close(fd)  # releases the probe's lock

    @contextlib.contextmanager
    def lock(self, timeout: float, *, poll: float = 0.05) -> Iterator[None]:
        """Hold the exclusive state lock. Waits up to ``timeout`` seconds, then raises
        StateLocked. The lock is released by the kernel if the process dies."""
        self.ensure()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise StateLocked(
                            f"another alicertd process is working on {self.root} "
                            f"(waited {timeout:g}s for its lock); try again when it has finished"
                        ) from None
                    time.sleep(poll)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    # -- account -------------------------------------------------------------

    def read_account_key(self) -> bytes | None:
        return _read_bytes(self.root / "account" / "key.pem")

    def write_account_key(self, pem: bytes) -> None:
        atomic_write(self.root / "account" / "key.pem", pem, KEY_MODE)

    def read_next_account_key(self) -> bytes | None:
        return _read_bytes(self.root / "account" / "key.next.pem")

    def write_next_account_key(self, pem: bytes) -> None:
        """Stage a rollover key before asking the CA, so that a crash right after the CA
        accepted it cannot lose the account."""
        atomic_write(self.root / "account" / "key.next.pem", pem, KEY_MODE)

    def promote_next_account_key(self) -> None:
        os.replace(self.root / "account" / "key.next.pem", self.root / "account" / "key.pem")
        _fsync_dir(self.root / "account")

    def discard_next_account_key(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "account" / "key.next.pem")

    def read_account(self) -> dict[str, Any] | None:
        data = _read_json(self.root / "account" / "account.json")
        if data is not None and not isinstance(data, dict):
            raise StateCorrupt(f"{self.root / 'account' / 'account.json'} is not a JSON object")
        return data

    def write_account(self, data: dict[str, Any]) -> None:
        atomic_write(self.root / "account" / "account.json", _json_bytes(data))

    # -- certificates ----------------------------------------------------------

    def certificate_names(self) -> list[str]:
        base = self.root / "certificates"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if not p.name.startswith("."))

    def read_certificate(self, name: str) -> StoredCertificate | None:
        link = self.root / "certificates" / check_name(name)
        if not link.exists():
            if link.is_symlink():
                raise StateCorrupt(f"{link} points at a missing archive directory")
            return None
        target = link.resolve()
        chain = _read_bytes(target / "fullchain.pem")
        key = _read_bytes(target / "privkey.pem")
        meta = _read_json(target / "meta.json")
        if chain is None or key is None or not isinstance(meta, dict):
            raise StateCorrupt(f"{target} is incomplete (fullchain.pem, privkey.pem, meta.json)")
        try:
            return StoredCertificate(name, chain.decode("ascii"), key.decode("ascii"), meta, target)
        except UnicodeDecodeError:
            raise StateCorrupt(f"{target} holds a PEM file that is not ASCII") from None

    def commit_certificate(self, name: str, serial: str, key_pem: str, fullchain_pem: str,
                           meta: dict[str, Any], *, keep: int = 3) -> Path:
        """Store a newly issued certificate and make it current in one atomic step."""
        check_name(name)
        if not re.fullmatch(r"[0-9a-f]{1,64}", serial):
            raise StateError(f"invalid serial {serial!r}")
        archive = self.root / "archive" / name
        archive.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        version = archive / serial
        version.mkdir(exist_ok=True, mode=DIR_MODE)
        atomic_write(version / "privkey.pem", key_pem.encode("ascii"), KEY_MODE)
        atomic_write(version / "fullchain.pem", fullchain_pem.encode("ascii"))
        atomic_write(version / "meta.json", _json_bytes(meta))
        certs = self.root / "certificates"
        certs.mkdir(exist_ok=True, mode=DIR_MODE)
        tmp_link = certs / f"{_TMP_PREFIX}{name}.{uuid.uuid4().hex[:8]}"
        os.symlink(Path("..") / "archive" / name / serial, tmp_link)
        os.replace(tmp_link, certs / name)
        _fsync_dir(certs)
        self._prune_archive(name, keep=keep, current=serial)
        return version

    def _prune_archive(self, name: str, *, keep: int, current: str) -> None:
        archive = self.root / "archive" / name
        versions = sorted((p for p in archive.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        old = [p for p in versions if p.name != current]
        for path in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(path, ignore_errors=True)

    def read_pending_key(self, name: str) -> bytes | None:
        return _read_bytes(self.root / "pending" / f"{check_name(name)}.key.pem")

    def write_pending_key(self, name: str, pem: bytes) -> None:
        atomic_write(self.root / "pending" / f"{check_name(name)}.key.pem", pem, KEY_MODE)

    def clear_pending_key(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "pending" / f"{check_name(name)}.key.pem")

    # -- deploy records and runtime state ---------------------------------------

    def read_deploy(self, name: str) -> dict[str, dict[str, Any]]:
        data = _read_json(self.root / "deploy" / f"{check_name(name)}.json")
        return data if isinstance(data, dict) else {}

    def write_deploy(self, name: str, records: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.root / "deploy" / f"{check_name(name)}.json", _json_bytes(records))

    def read_runtime(self, name: str) -> dict[str, Any]:
        data = _read_json(self.root / "runtime" / f"{check_name(name)}.json")
        return data if isinstance(data, dict) else {}

    def write_runtime(self, name: str, data: dict[str, Any]) -> None:
        atomic_write(self.root / "runtime" / f"{check_name(name)}.json", _json_bytes(data))

    # -- the daemon's refused reload ---------------------------------------------

    def read_reload_refused(self) -> dict[str, Any] | None:
        """What the daemon recorded when it refused a reload (``at``, ``reasons``), or None."""
        data = _read_json(self.root / "reload.json")
        return data if isinstance(data, dict) else None

    def write_reload_refused(self, data: dict[str, Any]) -> None:
        """Written without the state lock: a cycle may hold it for minutes, and ``status`` must
        show a refusal at once. One writer (the daemon's reload, one at a time) and one file
        replaced atomically need no lock; but a process taking the lock sweeps temp files, which
        can remove ours before its rename (see :meth:`_sweep_temp_files`): then write again."""
        for attempt in (1, 2):
            try:
                atomic_write(self.root / "reload.json", _json_bytes(data))
                return
            except FileNotFoundError:
                if attempt == 2 or not self.exists():
                    raise

    def clear_reload_refused(self) -> None:
        """A reload (or a start) that loaded the configuration: nothing is refused any more."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "reload.json")
            _fsync_dir(self.root)

"""What the workstation's storage can fail with while it runs: the store's errors and the audit
log's, each saying what was being done, where, and why (a full disk, a read-only file system, a
permission). A view-model catches these to show them to the user: nothing was saved, and the
data that needed an audit record was not shown."""

from __future__ import annotations

from authz.audit import AuditWriteError

from .store import StoreError

STORAGE_ERRORS: tuple[type[Exception], ...] = (StoreError, AuditWriteError)

"""CCC Workstation, the desktop app. ``app.services`` is Qt-free: it owns the store, the users,
the policy engine and the audit log; views (to come) only render what it decides."""

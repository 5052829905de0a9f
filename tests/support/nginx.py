"""A real nginx (Debian package) serving a directory on 127.0.0.1, started and stopped by a test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.cerbos_pdp import free_port
from tests.support.process import stop, wait_listening


class Nginx:
    def __init__(self, workdir: Path, root: Path) -> None:
        self.workdir, self.root, self.port = workdir, root, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

    def start(self) -> Nginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        # As root, nginx's workers would drop to "nobody", who cannot read a pytest temp dir.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf.write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {self.workdir}/body;
    proxy_temp_path {self.workdir}/proxy;
    fastcgi_temp_path {self.workdir}/fastcgi;
    uwsgi_temp_path {self.workdir}/uwsgi;
    scgi_temp_path {self.workdir}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location = /ccc/current.bundle {{
            alias {self.root}/current.bundle;
            default_type application/octet-stream;
            etag on;
        }}
    }}
}}
""")
        self.process = subprocess.Popen(
            [self.binary() or "nginx", "-c", str(conf), "-p", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.process, self.port, "nginx")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ccc/current.bundle"

    def stop(self) -> None:
        stop(self.process)

"""A real rsyslogd (Debian package) receiving RFC 5425 syslog over TLS on 127.0.0.1, writing
every message it gets to a file; started and stopped by the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.cerbos_pdp import free_port
from tests.support.process import stop, wait_listening
from tests.support.tls import TestPKI


class RsyslogCollector:
    def __init__(self, workdir: Path, pki: TestPKI) -> None:
        self.workdir = workdir
        self.pki = pki
        self.port = free_port()
        self.output = workdir / "received.log"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("rsyslogd") is not None or Path("/usr/sbin/rsyslogd").exists()

    def start(self) -> RsyslogCollector:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{self.workdir}" maxMessageSize="64k"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{self.pki.ca_cert}"
       DefaultNetstreamDriverCertFile="{self.pki.server_cert}"
       DefaultNetstreamDriverKeyFile="{self.pki.server_key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="anon")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="raw" type="string" string="%structured-data% %msg%\\n")
action(type="omfile" file="{self.output}" template="raw" flushOnTXEnd="on" asyncWriting="off")
""")
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        self.process = subprocess.Popen(
            [rsyslogd, "-n", "-f", str(conf), "-i", str(self.workdir / "rsyslog.pid")],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "rsyslog.err").open("wb"),
        )
        try:
            wait_listening(self.process, self.port, "rsyslogd")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(self.workdir / 'rsyslog.err').read_text()}") from None
        return self

    def stop(self) -> None:
        stop(self.process)

    def received(self) -> list[str]:
        return self.output.read_text().splitlines() if self.output.exists() else []

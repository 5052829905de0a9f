"""The first run works as printed (issue 18, part 8): `bash scripts/run` on a machine without a
display prints commands that run as printed, from wherever it was started, and a later run with a
display installs the X11 libraries Qt needs even though the headless run skipped them.

The runs are the real script as a person types it. Where the machine already has every library, the
loader's answer and the package manager are stand-ins on the PATH (``ldd`` reporting libxcb-cursor0
missing until ``apt-get install`` has "installed" it), so what the script asks and installs is seen."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "scripts" / "run"


def environment(tmp_path: Path, display: str | None = None, path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["CCC_DATA_DIR"] = str(tmp_path / "data")
    if display is not None:
        env["DISPLAY"] = display
    if path is not None:
        env["PATH"] = f"{path}:{env['PATH']}"
    return env


def commands(message: str) -> list[str]:
    """The commands the message prints, each on its own indented line."""
    return [line.strip() for line in message.splitlines() if line.startswith("    ")]


def test_a_headless_run_prints_commands_that_run_as_printed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    env = environment(tmp_path)
    run = subprocess.run(["bash", str(RUN)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "needs a display, and there is none here" in run.stderr
    assert "xvfb-run" not in run.stderr  # nothing that is not installed, or not on the PATH
    printed = commands(run.stderr)
    screenshot = next(c for c in printed if "--screenshot" in c)
    assert screenshot.split()[0] == str(ROOT / ".venv" / "bin" / "ccc-workstation")  # .venv/bin is not on the PATH
    shot = subprocess.run(shlex.split(screenshot), cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert shot.returncode == 0, shot.stderr[-2000:]
    png = (elsewhere / "ccc-workstation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    every_view = next(c for c in printed if "scripts/screenshots" in c)
    script = shlex.split(every_view)
    assert script[0] == "bash" and Path(script[1]).is_absolute() and Path(script[1]).is_file()
    assert subprocess.run(["bash", "-n", script[1]], capture_output=True).returncode == 0  # (it rewrites docs/)
    assert f"`bash {RUN}` opens the window" in run.stderr


def stand_ins(tmp_path: Path, installs: bool = True) -> tuple[Path, Path]:
    """``ldd`` that finds no libxcb-cursor.so.0 until it is installed, ``apt-get`` that records what
    it is asked (and, when ``installs``, installs it), ``sudo`` that just runs the command."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    installed = tmp_path / "installed"
    (bin_dir / "ldd").write_text(
        "#!/bin/sh\n"
        f'if [ -e {installed} ]; then echo "\tlibxcb-cursor.so.0 => /lib/libxcb-cursor.so.0 (0x1)"; '
        'else echo "\tlibxcb-cursor.so.0 => not found"; fi\n'
        'echo "\tlibc.so.6 => /lib/libc.so.6 (0x2)"\n'
    )
    install = f"touch {installed}" if installs else "true"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\ncase "$*" in *install*) {install};; esac\n')
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir, log


def test_a_run_with_a_display_installs_what_a_headless_run_skipped(tmp_path: Path) -> None:
    bin_dir, log = stand_ins(tmp_path)
    headless = subprocess.run(
        ["bash", str(RUN), "--check-settings"],
        env=environment(tmp_path, path=str(bin_dir)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert headless.returncode == 0, headless.stderr[-2000:]
    assert not log.exists()  # no display: nothing of the display's asked or installed
    with_display = subprocess.run(
        ["bash", str(RUN), "--check-settings"],
        env=environment(tmp_path, display=":0", path=str(bin_dir)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert with_display.returncode == 0, with_display.stderr[-2000:]
    assert "installing libxcb-cursor0" in with_display.stderr
    asked = log.read_text().splitlines()
    assert any(line.startswith("install") and "libxcb-cursor0" in line.split() for line in asked), asked


def test_a_library_still_missing_after_the_install_is_named_not_left_to_qt(tmp_path: Path) -> None:
    bin_dir, _log = stand_ins(tmp_path, installs=False)
    deps = subprocess.run(
        ["bash", str(ROOT / "scripts" / "display-deps")],
        env=environment(tmp_path, display=":0", path=str(bin_dir)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deps.returncode == 1
    assert "Qt still cannot load libxcb-cursor.so.0" in deps.stderr and "libxcb-cursor0" in deps.stderr

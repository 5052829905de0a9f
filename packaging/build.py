"""Builds the release: a self-contained, reproducible Debian package of CCC Workstation, its
SHA256SUMS and their Ed25519 signature. Run through ``bash packaging/build`` (packaging/README.md).

The package carries Debian's own Python 3.11 (the interpreter and standard library of the build
machine's python3.11 packages, named in ``Built-Using``), every dependency from the wheels pinned with
their hashes in ``packaging/requirements.lock``, Qt (the parts of PySide6 the app uses),
the app, the engine compiled with mypyc, and the policies, all under /opt/ccc-workstation. It is
built from the commit (``git archive``), never from the work tree, and only the commit decides its
bytes: file times are the commit's time (SOURCE_DATE_EPOCH), owners root, modes 0755/0644, the
bytecode compiled in one process in sorted order with hash-based (not time-based) invalidation,
and no path of the build directory inside.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
NAME = "ccc-workstation"
PREFIX = Path("/opt") / NAME
PYTHON_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
CONFFILE = Path("/etc") / NAME / "managed.toml"
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")  # packaging/debian/, run by dpkg
SOURCES = ("app", "authz", "policies", "pyproject.toml", "README.md", "packaging")

# What of the standard library a workstation never runs: its test suite, IDLE, Tk (no _tkinter in
# these packages), 2to3, ensurepip's wheels, demos, the C API test modules, and the extension
# modules for curses, Berkeley DB, NIS and readline (terminal and legacy modules that would each add
# a system dependency; the modules that import them fail only if used).
STDLIB_LEAVE_OUT = re.compile(
    r"^(test|idlelib|tkinter|turtledemo|lib2to3|ensurepip|distutils/tests|ctypes/test|unittest/test"
    r"|sqlite3/test)(/|$)"
    r"|^lib-dynload/(_test|_ctypes_test|_xxtestfuzz|xxlimited|_xxsubinterpreters|xxsubtype"
    r"|_curses|_dbm|nis\.|readline\.)"
    r"|^(sitecustomize\.py|turtle\.py|__phello__)"
)

# Of PySide6 (Essentials, and QtCharts of Addons), what the app uses (QtCore, QtGui, QtWidgets,
# QtCharts) and the plugins Qt loads for them on an X11 desktop (or offscreen): the Qt libraries kept
# are what these need, found from the ELF files themselves. Designer, QML/Quick, Wayland compositors,
# SQL drivers, the tools, headers and type stubs stay out (they would add ~150 MB and system
# dependencies nothing uses).
QT_MODULES = ("QtCore", "QtGui", "QtWidgets", "QtCharts")  # QtCharts: of PySide6-Addons, the telemetry charts
QT_PLUGINS = (
    "platforms/libqxcb.so",
    "platforms/libqoffscreen.so",
    "platforms/libqminimal.so",
    "xcbglintegrations/libqxcb-glx-integration.so",
    "xcbglintegrations/libqxcb-egl-integration.so",
    "platforminputcontexts/libcomposeplatforminputcontextplugin.so",
    "platforminputcontexts/libibusplatforminputcontextplugin.so",
    "platformthemes/libqxdgdesktopportal.so",
    "imageformats/libqgif.so",
    "imageformats/libqico.so",
    "imageformats/libqsvg.so",
    "iconengines/libqsvgicon.so",
)
QT_TRANSLATIONS = re.compile(r"^qt(base)?_[a-zA-Z_]+\.qm$")
PYSIDE_KEEP = re.compile(
    r"^(__init__\.py|_config\.py|_git_pyside_version\.py|py\.typed|support|libpyside6\.abi3\.so\.[0-9.]+"
    + "|"
    + "|".join(f"{m}\\.abi3\\.so" for m in QT_MODULES)
    + r"|Qt)$"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", type=Path, help="the release private key (Ed25519 PEM); default: a throwaway one")
    parser.add_argument("--version", help="the package version (default: pyproject.toml's)")
    parser.add_argument("--out", type=Path, default=CHECKOUT / "dist", help="where the release goes (default: dist/)")
    parser.add_argument("--commit", default="HEAD", help="the commit to build (default: HEAD)")
    parser.add_argument(
        "--worktree",
        action="store_true",
        help="for developers: build the work tree's files (tracked and untracked, not ignored) instead of "
        "the commit; such a package is not a release (nobody can rebuild it from a commit)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the build directory (it is printed)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ccc-build-"))
    try:
        deb = Build(work, args.commit, args.version, args.worktree).run(args.out.resolve())
        sign(work, args.out.resolve(), deb, args.key)
    finally:
        if args.keep_work:
            print(f"build directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    size = deb.stat().st_size
    print(f"built {deb} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return 0


def run(cmd: list[str | Path], **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kw)  # type: ignore[call-overload, no-any-return]


def git(*args: str) -> str:
    return run(["git", "-C", CHECKOUT, *args], capture_output=True).stdout.strip()


def clean_env(**extra: str) -> dict[str, str]:
    """The build's environment: nothing of the caller's Python set-up, a fixed locale, time zone and
    hash seed, so no two builds differ by who ran them."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CACHE_DIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


class Build:
    def __init__(self, work: Path, commit: str, version: str | None, worktree: bool = False) -> None:
        self.work = work
        self.worktree = worktree
        self.commit = git("rev-parse", "--verify", f"{commit}^{{commit}}")
        self.epoch = int(git("log", "-1", "--format=%ct", self.commit))
        self.src = work / "src"
        self.root = work / "root"
        self.opt = self.root / PREFIX.relative_to("/")
        self.site = self.opt / "site"
        self.python_dir = self.opt / "python"
        self.python = self.python_dir / "bin" / "python3.11"
        self.host_python = Path(os.environ.get("CCC_BUILD_PYTHON", "/usr/bin/python3.11"))
        self.version = version or ""
        self.env = clean_env(SOURCE_DATE_EPOCH=str(self.epoch))
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        print(f"[build] {time.monotonic() - self.started:5.0f} s  {what}", flush=True)

    def run(self, out: Path) -> Path:
        self.export_sources()
        self.version = self.version or self.project_version()
        if not re.fullmatch(r"[0-9][A-Za-z0-9.+~]*", self.version):
            raise SystemExit(f"--version {self.version!r} is not a Debian version (digits first; A-Z a-z 0-9 . + ~)")
        self.step(f"{NAME} {self.version} from commit {self.commit[:12]} (SOURCE_DATE_EPOCH={self.epoch})")
        self.copy_python()
        self.tools_venv()
        self.install_dependencies()
        self.prune_qt()
        self.strip_libraries()
        self.install_project()
        self.compile_engine()
        self.compile_bytecode()
        self.desktop_files()
        self.normalize()
        control = self.control()
        return self.build_deb(out, control)

    # ---- inputs ---------------------------------------------------------------------------------

    def export_sources(self) -> None:
        if self.worktree:
            print("[build] note: building the work tree, not a commit: not a release", flush=True)
            names = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SOURCES).split("\0")
            for name in sorted(n for n in names if n and (CHECKOUT / n).is_file()):
                target = self.src / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(CHECKOUT / name, target)
            return
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *SOURCES)
        if changed:
            print(
                f"[build] note: building commit {self.commit[:12]}; the uncommitted changes below are not in it:\n"
                + changed,
                flush=True,
            )
        self.src.mkdir()
        # The system's tar: Debian 12's Python 3.11.2 has no extraction filters yet.
        archive = run(
            ["git", "-C", CHECKOUT, "archive", "--format=tar", self.commit, *SOURCES], capture_output=True, text=False
        )
        run(["tar", "--extract", "--no-same-owner", "--directory", self.src], input=archive.stdout, text=False)

    def project_version(self) -> str:
        return str(tomllib.loads((self.src / "pyproject.toml").read_text())["project"]["version"])

    def copy_python(self) -> None:
        """Debian's python3.11 (interpreter and standard library) as installed on the build machine,
        moved under /opt: it finds its library next to itself (lib/python3.11/os.py)."""
        self.step(f"Python: {', '.join(PYTHON_PACKAGES)} {self.python_version()}")
        listed = run(["dpkg-query", "-L", *PYTHON_PACKAGES], capture_output=True).stdout.split("\n")
        stdlib = Path("/usr/lib/python3.11")
        for name in sorted(set(listed)):
            path = Path(name)
            if not path.is_relative_to(stdlib) or path == stdlib or path.is_dir() and not path.is_symlink():
                continue
            rel = path.relative_to(stdlib)
            if STDLIB_LEAVE_OUT.search(rel.as_posix()) or "__pycache__" in rel.parts:
                continue
            target = self.python_dir / "lib" / "python3.11" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                link = os.readlink(path)
                if "/" in link:  # e.g. sitecustomize.py -> /etc/python3.11/...: not ours to carry
                    continue
                target.symlink_to(link)
            else:
                shutil.copyfile(path, target)
        (self.python.parent).mkdir(parents=True)
        shutil.copyfile(self.host_python.resolve(), self.python)
        self.python.chmod(0o755)
        # The app's own directory on the bundled Python's path (Debian's site.py reads lib/python3/dist-packages).
        dist = self.python_dir / "lib" / "python3" / "dist-packages"
        dist.mkdir(parents=True)
        (dist / f"{NAME}.pth").write_text(f"{PREFIX / 'site'}\n")

    def python_version(self) -> str:
        """The version of Debian's python3.11 source package the interpreter comes from."""
        return run(["dpkg-query", "-W", "-f=${source:Version}", PYTHON_PACKAGES[0]], capture_output=True).stdout

    def tools_venv(self) -> None:
        """A venv of the same Debian Python with what builds the compiled engine (mypyc), pinned."""
        self.step("build tools (packaging/build-requirements.lock)")
        self.tools = self.work / "tools"
        run([self.host_python, "-m", "venv", self.tools], env=self.env)
        self.pip(self.tools / "bin" / "python", "-r", self.src / "packaging" / "build-requirements.lock")

    def pip(self, python: Path, *args: str | Path) -> None:
        run(
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--only-binary", ":all:",
             "--no-compile", "--no-warn-script-location", *args],
            env=self.env,
        )  # fmt: skip

    def install_dependencies(self) -> None:
        self.step("dependencies (packaging/requirements.lock)")
        self.pip(
            self.tools / "bin" / "python", "--target", self.site, "-r", self.src / "packaging" / "requirements.lock"
        )
        shutil.rmtree(self.site / "bin", ignore_errors=True)  # console scripts naming the build's python
        for record in self.site.glob("*.dist-info/RECORD"):
            record.unlink()  # lists files pruned below and bytecode compiled later; nothing installs from here
        for direct in self.site.glob("*.dist-info/direct_url.json"):
            direct.unlink()

    def prune_qt(self) -> None:
        self.step(f"Qt: {', '.join(QT_MODULES)} and {len(QT_PLUGINS)} plugins")
        pyside = self.site / "PySide6"
        for entry in sorted(pyside.iterdir()):
            if not PYSIDE_KEEP.match(entry.name) and entry.name != "__pycache__":
                remove(entry)
        qt = pyside / "Qt"
        for entry in sorted(qt.iterdir()):
            if entry.name not in ("lib", "plugins", "translations"):
                remove(entry)
        plugins = qt / "plugins"
        for plugin in sorted(plugins.rglob("*")):
            if plugin.is_file() and plugin.relative_to(plugins).as_posix() not in QT_PLUGINS:
                plugin.unlink()
        for folder in sorted(plugins.iterdir()):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for qm in sorted((qt / "translations").iterdir()):
            if not QT_TRANSLATIONS.match(qm.name):
                remove(qm)
        # The Qt libraries: only those the kept modules and plugins need, directly or not.
        libs = {p.name: p for p in (qt / "lib").iterdir() if p.is_file()}
        wanted: set[str] = set()
        todo = [pyside / f"{m}.abi3.so" for m in QT_MODULES] + [plugins / p for p in QT_PLUGINS]
        while todo:
            for needed in elf_needed(todo.pop()):
                if needed in libs and needed not in wanted:
                    wanted.add(needed)
                    todo.append(libs[needed])
        for name, path in sorted(libs.items()):
            if name not in wanted:
                path.unlink()
        for path in sorted((qt / "lib").iterdir()):
            if path.is_dir():
                remove(path)
        shiboken = self.site / "shiboken6"
        for entry in ("include", "lib"):
            remove(shiboken / entry)
        for stub in sorted(self.site.rglob("*.pyi")):
            stub.unlink()

    def strip_libraries(self) -> None:
        """The wheels' shared objects without their symbol tables (several ship them: ~10 MB)."""
        self.step("strip the wheels' shared objects")
        objects = sorted(p for p in self.site.rglob("*.so*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF")
        run(["strip", "--strip-unneeded", *objects])

    def install_project(self) -> None:
        self.step("the app, the engine and the policies")
        for name in ("app", "authz", "policies"):
            shutil.copytree(self.src / name, self.site / name)

    def compile_engine(self) -> None:
        """authz/plan.py, evaluate.py and api.py through mypyc, as scripts/build-native does, in the
        exported sources (paths mapped away from the build directory), then into the package."""
        self.step("the compiled engine (mypyc)")
        code = (
            "import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('authz_native', 'authz/native.py')\n"
            "native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native); native.build()\n"
        )
        # No build path in the objects: mypyc's headers name their own place in the tools venv.
        flags = " ".join(
            f"-ffile-prefix-map={path}={name}"
            for path, name in ((self.src, "."), (self.site, PREFIX / "site"), (self.tools, "mypyc-tools"))
        )
        env = self.env | {
            "CFLAGS": flags,
            "PYTHONPATH": str(self.site),
            "MYPY_CACHE_DIR": str(self.work / "mypy-cache"),
        }
        run([self.tools / "bin" / "python", "-c", code], cwd=self.src, env=env)
        built = sorted((self.src / "authz").glob("*.so"))
        if not built:
            raise SystemExit("mypyc built nothing")
        for so in built:
            run(["strip", "--strip-unneeded", "-o", self.site / "authz" / so.name, so])
        shutil.copyfile(self.src / "authz" / "native.json", self.site / "authz" / "native.json")

    def compile_bytecode(self) -> None:
        """Every module's bytecode, by the bundled interpreter, in one process and in sorted order,
        hash-based and unchecked (no source time inside; the files under /opt never change but by
        an upgrade, which replaces both), each naming its installed path, never the build's."""
        self.step("bytecode")
        code = r"""
import py_compile, sys
from pathlib import Path
root, prefix = Path(sys.argv[1]), sys.argv[2]
failed = []
for base in sorted(sys.argv[3:]):
    for path in sorted(Path(base).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        try:
            py_compile.compile(str(path), dfile="/" + rel, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError:
            failed.append(rel)
print(f"[build] {len(failed)} files are not Python 3.11 and stay uncompiled: {failed[:5]}")
"""
        # The interpreter being packaged compiles it (its magic number is the one that loads it), in
        # the build's clean environment (PYTHONHASHSEED=0 orders sets and frozensets alike), with
        # no site (-S) and no user site (-s).
        run(
            [self.python, "-s", "-S", "-c", code, self.root, str(PREFIX), self.python_dir / "lib", self.site],
            env=self.env | {"PYTHONDONTWRITEBYTECODE": ""},
        )

    # ---- what the desktop and dpkg see -----------------------------------------------------------

    def desktop_files(self) -> None:
        self.step("launchers, desktop entry, icon, manual pages, documentation")
        files = self.src / "packaging" / "debian"
        bin_dir = self.opt / "bin"
        bin_dir.mkdir()
        launcher = (files / "launcher.sh").read_text()
        for command, module in ((NAME, "app.main"), ("ccc-authz", "authz.cli"), ("ccc-guard", "authz.guard")):
            script = bin_dir / command
            script.write_text(launcher.replace("@MODULE@", module).replace("@PREFIX@", str(PREFIX)))
            script.chmod(0o755)
            if command == "ccc-guard":  # a service's program (systemd runs it), not a user's command
                continue
            link = self.root / "usr" / "bin" / command
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(PREFIX / "bin" / command)
        # The audit guard's service (packaging/debian/postinst creates its user and starts it).
        install(files / "ccc-guard.service", self.root / "lib" / "systemd" / "system" / "ccc-guard.service")
        share = self.root / "usr" / "share"
        install(files / f"{NAME}.desktop", share / "applications" / f"{NAME}.desktop")
        install(files / f"{NAME}.svg", share / "icons" / "hicolor" / "scalable" / "apps" / f"{NAME}.svg")
        for page in ("ccc-workstation.1", "ccc-authz.1"):
            gzip_file((files / page).read_bytes(), share / "man" / "man1" / f"{page}.gz")
        doc = share / "doc" / NAME
        install(files / "copyright", doc / "copyright")
        gzip_file(self.changelog().encode(), doc / "changelog.gz")
        install(files / "lintian-overrides", share / "lintian" / "overrides" / NAME)
        # The managed configuration, every key commented out (it manages nothing until IT edits or
        # replaces it): a conffile, so an upgrade never overwrites IT's version and purge removes it.
        install(self.src / "packaging" / "managed" / "managed.toml", self.root / CONFFILE.relative_to("/"))

    def changelog(self) -> str:
        when = datetime.fromtimestamp(self.epoch, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        subject = git("log", "-1", "--format=%s", self.commit)
        subject = subject if len(subject) <= 200 else subject[:197] + "..."
        entry = "\n".join(textwrap.wrap(subject, 76, initial_indent="  * ", subsequent_indent="    "))
        return (
            f"{NAME} ({self.version}) stable; urgency=medium\n\n"
            f"  * Built from commit {self.commit}.\n"
            f"{entry}\n\n"
            f" -- CCC Workstation Release <release@ccc-workstation.invalid>  {when}\n"
        )

    def normalize(self) -> None:
        """Modes 0755 (directories, programs) or 0644 (everything else: modules and shared
        objects are read, not run), every time the commit's."""
        self.step("modes and times")
        programs = {self.python, *(self.opt / "bin").iterdir()}
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_symlink():
                os.utime(path, (self.epoch, self.epoch), follow_symlinks=False)
                continue
            path.chmod(0o755 if path.is_dir() or path in programs else 0o644)
            os.utime(path, (self.epoch, self.epoch))
        os.utime(self.root, (self.epoch, self.epoch))

    def control(self) -> str:
        template = (self.src / "packaging" / "debian" / "control").read_text()
        installed_kib = sum(
            -(-p.lstat().st_size // 1024) for p in self.root.rglob("*") if p.is_file() or p.is_symlink()
        ) + sum(1 for p in self.root.rglob("*") if p.is_dir())
        return (
            template.replace("@VERSION@", self.version)
            .replace("@INSTALLED_SIZE@", str(installed_kib))
            .replace("@PYTHON_VERSION@", self.python_version())
            .replace("@COMMIT@", self.commit)
        )

    def build_deb(self, out: Path, control: str) -> Path:
        self.step("dpkg-deb")
        debian = self.root / "DEBIAN"
        debian.mkdir()
        (debian / "control").write_text(control)
        (debian / "conffiles").write_text(f"{CONFFILE}\n")
        for script in MAINTAINER_SCRIPTS:
            install(self.src / "packaging" / "debian" / script, debian / script, 0o755)
        sums = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(self.root).as_posix()
            if not rel.startswith("DEBIAN/"):
                sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")
        (debian / "md5sums").write_text("".join(sums))
        for path in [debian, *debian.iterdir()]:
            path.chmod(0o755 if path.is_dir() or path.name in MAINTAINER_SCRIPTS else 0o644)
            os.utime(path, (self.epoch, self.epoch))
        out.mkdir(parents=True, exist_ok=True)
        for stale in sorted(out.glob(f"{NAME}_*.deb")) + [out / "SHA256SUMS", out / "SHA256SUMS.sig"]:
            if stale.exists():
                print(f"[build] removing the earlier {stale.name} from {out}")
                stale.unlink()
        deb = out / f"{NAME}_{self.version}_amd64.deb"
        run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--threads-max=2", "--build", self.root, deb],
            env=self.env,
            stdout=subprocess.DEVNULL,
        )
        return deb


def sign(work: Path, out: Path, deb: Path, key: Path | None) -> None:
    """SHA256SUMS and SHA256SUMS.sig, by the engine's own ``ccc-authz package sign`` as packaged."""
    site = work / "root" / PREFIX.relative_to("/") / "site"
    python = work / "root" / PREFIX.relative_to("/") / "python" / "bin" / "python3.11"
    if key is None:
        keys = work / "throwaway-key"
        tool(python, site, "keygen", "--out", keys)
        key = keys / "private.key"
        shutil.copyfile(keys / "public.key", out / "release-public.key")
        print(
            f"[build] signed with a throwaway release key: its public half is {out / 'release-public.key'} "
            "(pass --key for a real release)"
        )
    tool(python, site, "package", "sign", out, "--key", key, "--file", deb.name)


def tool(python: Path, site: Path, *args: str | Path) -> None:
    # -P: not the current directory (a checkout's authz/) on the path, only the package's site.
    run([python, "-s", "-S", "-B", "-P", "-m", "authz.cli", *args], env=clean_env(PYTHONPATH=str(site)))


def elf_needed(path: Path) -> list[str]:
    dynamic = run(["readelf", "-d", path], capture_output=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def install(source: Path, target: Path, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def gzip_file(data: bytes, target: Path) -> None:
    """gzip -9n: no name, no time inside."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
        f.write(data)


if __name__ == "__main__":
    sys.exit(main())

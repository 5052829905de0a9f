"""``ccc-authz impact`` and the impact gate of ``ccc-authz bundle build``: arguments in, a report
and an exit status out (0 nothing unexpected flips, 5 something does, 2 the run could not start,
3 a side does not compile). Every failure is a one-line reason on stderr, never a traceback."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .impact import PolicySide
    from .impact_report import Report

# The replayer's modules (and the bundle's, with cryptography) are imported when a replay runs:
# every ccc-authz command builds this parser, and `check`'s start-up should not pay for them.

EXIT_FLIPS = 5
EXIT_USAGE = 2
EXIT_POLICY_ERRORS = 3


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """``bundle build``'s impact gate options."""
    parser.add_argument("--baseline", metavar="OLD", help="the policies in force (directory or signed bundle)")
    parser.add_argument("--requests", metavar="FILE", help="replay these requests: refuse if a decision flips")
    parser.add_argument("--accept", metavar="FILE", help="the expected changes (kind, action, role, direction)")
    parser.add_argument("--pubkey", help="verifies a baseline bundle (default: the signing key's public half)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``impact`` subcommand's options."""
    parser.add_argument("old", help="the policies in force: a policy directory or a signed bundle")
    parser.add_argument("new", help="the candidate: a policy directory or a signed bundle")
    parser.add_argument(
        "--requests", required=True, metavar="FILE", help="CheckResources JSON lines, an audit log, or its export"
    )
    parser.add_argument("--pubkey", help="the pinned public key that verifies OLD or NEW when they are bundles")
    parser.add_argument(
        "--format", choices=["text", "json"], default="text", help='text (the default) or json: {"summary", "flips"}'
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report here")
    parser.add_argument("--accept", metavar="FILE", help="the expected changes (kind, action, role, direction)")
    parser.add_argument("--no-strict-evaluation", action="store_true", help="Cerbos's default evaluation")
    parser.add_argument(
        "--allow-broken-chain", action="store_true", help="replay an audit log whose chain does not verify"
    )
    parser.add_argument("--workers", type=int, default=0, help="processes (default: the machine's cores, up to 4)")
    parser.add_argument("--cluster", metavar="ADDRESS", help="replay on a Dask distributed scheduler (tcp://host:port)")
    parser.add_argument("--chunk-requests", type=int, help="requests per unit of work (default 2,000)")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def run_impact(args: argparse.Namespace, out: TextIO) -> int:
    """The ``impact`` subcommand."""
    from .bundle import BundleError, load_public_key
    from .impact import ImpactError, SideDoesNotCompile, load_side
    from .impact_report import write_html, write_json, write_text
    from .impact_sources import SourceError

    if args.workers < 0:
        sys.stderr.write("ccc-authz impact: --workers must be 0 (automatic) or more\n")
        return EXIT_USAGE
    try:
        public_key = load_public_key(Path(args.pubkey)) if args.pubkey else None
        old, new = load_side(Path(args.old), public_key), load_side(Path(args.new), public_key)
        report = impact_report(old, new, args)
    except SideDoesNotCompile as exc:
        sys.stderr.write(f"ccc-authz impact: {exc}\n")
        return EXIT_POLICY_ERRORS
    except (ImpactError, SourceError, BundleError) as exc:
        sys.stderr.write(f"ccc-authz impact: {exc}\n")
        return EXIT_USAGE
    try:
        if args.format == "json":
            buffer: Any = getattr(out, "buffer", None)
            if buffer is None:
                data = io.BytesIO()
                write_json(report, data)
                out.write(data.getvalue().decode())
            else:
                out.flush()
                write_json(report, buffer)
                buffer.flush()
        else:
            write_text(report, out)
        if args.html:
            with open(args.html, "w", encoding="utf-8") as page:
                write_html(report, page)
    except OSError as exc:
        sys.stderr.write(f"ccc-authz impact: the report cannot be written: {exc}\n")
        return EXIT_USAGE
    finally:
        report.run.spool.close()
    return report.exit_code


def impact_report(old: PolicySide, new: PolicySide, args: argparse.Namespace) -> Report:
    """Replays ``args.requests`` under both sides; raises ImpactError/SourceError if it cannot."""
    from .impact import replay
    from .impact_report import Report, load_accept
    from .impact_sources import CHUNK_ITEMS, open_source

    expected = load_accept(Path(args.accept)) if getattr(args, "accept", None) else []
    source = open_source(Path(args.requests), getattr(args, "allow_broken_chain", False))
    run = replay(
        old,
        new,
        source,
        strict=not getattr(args, "no_strict_evaluation", False),
        workers=getattr(args, "workers", 0) or default_workers(),
        cluster=getattr(args, "cluster", None),
        chunk_size=max(1, getattr(args, "chunk_requests", None) or CHUNK_ITEMS),
    )
    return Report(run, old, new, source.info, expected)


def bundle_gate(args: argparse.Namespace, policy_dir: Path, out: TextIO) -> int:
    """``bundle build --baseline OLD --requests FILE [--accept FILE]``: 0 when no unexpected
    decision flips between the baseline and the policies about to be bundled, else the report
    and 5. A baseline bundle is verified with ``--pubkey``, or with the signing key's own public
    half (the key that signs the new bundle signed the one in force)."""
    if not args.requests:
        return 0
    from .bundle import BundleError, load_private_key, load_public_key
    from .impact import ImpactError, load_side
    from .impact_report import write_text
    from .impact_sources import SourceError

    if not args.baseline:
        sys.stderr.write("bundle not built: --requests needs --baseline (the policies in force)\n")
        return EXIT_USAGE
    try:
        public_key = (
            load_public_key(Path(args.pubkey)) if args.pubkey else load_private_key(Path(args.key)).public_key()
        )
        old = load_side(Path(args.baseline), public_key)
        new = load_side(policy_dir, None)
        report = impact_report(old, new, args)
    except (ImpactError, SourceError, BundleError) as exc:
        sys.stderr.write(f"bundle not built: {exc}\n")
        return EXIT_USAGE
    try:
        if report.exit_code:
            write_text(report, out)
            sys.stderr.write(
                f"bundle not built: {report.unexpected} decisions flip that --accept does not list "
                f"(against {args.baseline}, on {args.requests})\n"
            )
        else:
            out.write(
                f"impact against {args.baseline}: {report.summary()['flips']} flips, all expected, "
                f"on {report.run.total.requests} requests\n"
            )
        return report.exit_code
    finally:
        report.run.spool.close()

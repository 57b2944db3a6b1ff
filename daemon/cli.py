"""The command line (see the contract): parse, load the config, dispatch, map errors to exit codes.

Exit codes: 0 success; 1 a certificate, target or operation failed (or the state lock could not
be had); 2 the command line or the configuration is invalid (then nothing was contacted and
nothing written). No traceback reaches the user: known errors are one line on stderr, and an
unexpected exception is one line plus a hint to rerun with ``--log-level debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from daemon import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

REVOKE_REASONS = {
    "unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
    "cessationOfOperation": 5,
}

log = logging.getLogger("alicertd")


class UsageError(Exception):
    """A bad command line: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we want one line
        raise UsageError(f"{message} (see 'alicertd --help')")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $ALICERTD_CONFIG, then /etc/alicertd/config.toml)")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default=argparse.SUPPRESS, help="log verbosity (default: info)")
    common.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS,
                        help="text (journald-friendly, default) or one JSON object per line")

    p = _Parser(prog="alicertd", parents=[common],
                description="Certificate automation for Alibaba Cloud: ACME DNS-01 through Alidns, "
                            "deployed to CDN and API Gateway. Without a command it runs as a daemon.")
    p.add_argument("--version", action="version", version=f"alicertd {__version__}")
    p.add_argument("--run-now", action="store_true", help="run one full cycle, then exit")
    p.add_argument("--dry-run", action="store_true", help="with --run-now: print the plan, change nothing")
    p.add_argument("--force", metavar="NAME", action="append", default=[],
                   help="with --run-now: renew certificate NAME even if not due (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("status", parents=[common], help="show managed certificates and targets")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("check-config", parents=[common], help="validate the configuration only")
    r = sub.add_parser("revoke", parents=[common], help="revoke the current certificate of NAME")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--reason", choices=list(REVOKE_REASONS), default="unspecified")

    a = sub.add_parser("account", parents=[common], help="the ACME account of this state dir")
    asub = a.add_subparsers(dest="account_command", metavar="ACTION", parser_class=_Parser, required=True)
    for name, text in (("show", "show the account"), ("register", "register (or find) the account"),
                       ("rollover", "replace the account key"), ("deactivate", "deactivate the account")):
        ap = asub.add_parser(name, parents=[common], help=text)
        ap.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "deactivate":
            ap.add_argument("--yes", action="store_true", help="confirm: deactivation cannot be undone")
    c = sub.add_parser("acme", parents=[common], help="ACME server information")
    csub = c.add_subparsers(dest="acme_command", metavar="ACTION", parser_class=_Parser, required=True)
    d = csub.add_parser("directory", parents=[common], help="show the CA's directory")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("sandbox", help="run the local Alibaba Cloud sandbox (see 'alicertd sandbox --help')",
                   add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:  # forwarded whole: the sandbox has its own options
        try:
            from sandbox.cli import main as sandbox_main
        except ImportError:  # the container image leaves the sandbox out
            _stderr("alicertd: the sandbox is not installed here (it ships with the source, not the image)")
            return 2
        return sandbox_main(argv[1:], prog="alicertd sandbox")
    try:
        args = build_parser().parse_args(argv)
        _check_combinations(args)
    except UsageError as exc:
        _stderr(f"alicertd: {exc}")
        return EXIT_USAGE

    from daemon.logs import setup_logging
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("alicertd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        from daemon.errors import describe_error
        known, text = describe_error(exc)
        if not known:
            log.debug("unexpected error", exc_info=True)
            text += " (unexpected; rerun with --log-level debug for details)"
        _stderr(f"alicertd: {text}")
        return EXIT_USAGE if getattr(exc, "exit_code", None) == EXIT_USAGE else EXIT_FAILED


def _stderr(text: str, priority: int = 3) -> None:
    """One line on stderr, carrying its syslog priority when stderr is the journal (as log
    lines do, see daemon.logs): without it journald files a fatal error as info."""
    from daemon.logs import journal_stream_matches
    prefix = f"<{priority}>" if journal_stream_matches(sys.stderr) else ""
    print(prefix + text, file=sys.stderr)


def _check_combinations(args: argparse.Namespace) -> None:
    if args.command and (args.run_now or args.dry_run or args.force):
        raise UsageError(f"--run-now, --dry-run and --force do not go with '{args.command}'")
    if (args.dry_run or args.force) and not args.run_now:
        raise UsageError("--dry-run and --force need --run-now")


def _load(args: argparse.Namespace):
    from daemon.config_load import ConfigError, load_config, resolve_config_path
    path = resolve_config_path(getattr(args, "config", None))
    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in exc.lines():
            _stderr(f"alicertd: {line}")
        raise _ConfigInvalid() from None
    register_config_secrets(config)
    return config


def register_config_secrets(config) -> None:
    """Hand every secret the config holds to the log filter (daemon.logs), once it is parsed:
    AccessKey secrets and STS tokens of every account, the EAB HMAC key, and the robots'
    signing secrets and URL query values (DingTalk and WeCom put the access token there)."""
    from urllib.parse import parse_qsl, urlsplit

    from daemon.logs import register_secret
    register_secret(config.acme.eab_hmac_key)
    for name in config.aliyun.account_names:
        account = config.aliyun.account(name)
        register_secret(account.access_key_secret)
        register_secret(account.security_token)
    for robot in config.notify:
        register_secret(robot.secret)
        for _, value in parse_qsl(urlsplit(robot.url).query):
            register_secret(value)


class _ConfigInvalid(Exception):
    exit_code = EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except _ConfigInvalid:
        return EXIT_USAGE

    if args.command == "check-config":
        from daemon.renewal_rules import renewal_warnings
        for line in renewal_warnings(config):
            _stderr(f"{config.path}: warning: {line}", priority=4)
        names = ", ".join(c.name for c in config.certificates)
        print(f"{config.path}: OK ({len(config.certificates)} certificate(s): {names})")
        return EXIT_OK
    if args.command == "status":
        from daemon.status import run_status
        return run_status(config, as_json=args.json)
    if args.command == "revoke":
        if config.certificate(args.name) is None:
            _stderr(f"alicertd: revoke: no certificate named {args.name!r} in {config.path}")
            return EXIT_USAGE
        from daemon.account_ops import run_revoke
        return run_revoke(config, args.name, REVOKE_REASONS[args.reason])
    if args.command == "account":
        from daemon.account_ops import run_account
        return run_account(config, args.account_command, as_json=args.json,
                           confirmed=getattr(args, "yes", False))
    if args.command == "acme":
        from daemon.account_ops import run_directory
        return run_directory(config, as_json=args.json)

    unknown = [n for n in args.force if config.certificate(n) is None]
    if unknown:
        _stderr(f"alicertd: --force: no certificate named {unknown[0]!r} in {config.path}")
        return EXIT_USAGE
    if args.run_now:
        from daemon.oneshot import run_once
        return run_once(config, dry_run=args.dry_run, force=tuple(args.force))
    from daemon.service import run_daemon
    return run_daemon(config, config_loader=lambda: _reload(args))


def _reload(args: argparse.Namespace):
    """SIGHUP: load the config again; a bad one raises ConfigError and the old one stays."""
    from daemon.config_load import load_config, resolve_config_path
    config = load_config(resolve_config_path(getattr(args, "config", None)))
    register_config_secrets(config)
    return config


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")

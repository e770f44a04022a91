"""`portico serve | check-config | prompts apply|list | deployments apply|list | kb … (cli_kb.py) | --version`:
parse arguments and hand over; no logic here."""

from __future__ import annotations

import argparse
import os
import sys

from portico import __version__
from portico.cli_kb import add_kb_commands, run_kb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portico", description="Portico AI gateway")
    parser.add_argument("--version", action="version", version=f"portico {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config (default: embedded defaults + provider env vars)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=None)
    check = sub.add_parser("check-config", help="validate a config file and print its errors")
    check.add_argument("path")
    check.add_argument(
        "--strict", action="store_true", help="also connect: the database, Redis, each provider's base URL"
    )
    for command in _STORED:
        _add_stored(sub, command)
    add_kb_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "kb":
        return run_kb(args)
    if args.command == "check-config":
        return check_config(args.path, strict=args.strict)
    if args.command in _STORED:
        return stored(args)
    return serve_gateway(args.config, args.host, args.port, args.workers)


def check_config(path: str, *, strict: bool = False) -> int:
    """Exit 0: `serve` would start; 1: a problem in the file (or, with --strict, a failed connection)."""
    from portico.config_check import validate_config

    problems = validate_config(path)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    if not strict:
        return 0
    import asyncio

    from portico.config.load import load_settings
    from portico.connect_check import checks_for, run_checks

    failed = asyncio.run(run_checks(checks_for(load_settings(path)), print))
    if failed:
        print(f"{path}: {failed} connection check(s) failed", file=sys.stderr)
    return 1 if failed else 0


_STORED = {  # command → (what it manages, what names one object, what `list` shows); see config_as_code.py
    "prompts": ("stored prompts", "an `id`", "the latest version of every stored prompt"),
    "deployments": ("deployments", "a `key`", "the current version of every deployment"),
}


def _add_stored(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: str) -> None:
    what, named_by, list_help = _STORED[command]
    group = sub.add_parser(command, help=f"{what} on a running gateway")
    actions = group.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help=f"create or update the {command} a YAML file declares (idempotent)")
    apply.add_argument("-f", "--file", required=True, help=f"YAML: a list of {command}, each with {named_by}")
    listing = actions.add_parser("list", help=list_help)
    for action in (apply, listing):
        action.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
        action.add_argument("--key", default=None, help="a gateway key (default: $PORTICO_API_KEY)")


def stored(args: argparse.Namespace) -> int:
    """`portico prompts|deployments apply|list`."""
    from portico.admin_client import AdminClient, AdminError
    from portico.config_as_code import RESOURCES, apply_all, list_all, read_entries

    client = AdminClient(args.url, args.key)
    resource = RESOURCES[args.command]
    try:
        if args.action == "list":
            return list_all(client, resource, print)
        entries = read_entries(args.file, args.command)
        return apply_all(client, resource, entries, print, lambda line: print(line, file=sys.stderr))
    except AdminError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def serve_gateway(config: str | None, host: str | None, port: int | None, workers: int | None) -> int:
    from portico.config.load import load_settings
    from portico.config_check import validate_config
    from portico.http.server import build_config, run
    from portico.observability.metrics import METRICS_DIR_ENV

    problems = validate_config(config)
    if problems:
        for problem in problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    settings = load_settings(config)
    if config:
        os.environ["PORTICO_CONFIG"] = os.path.abspath(config)
    shared = None
    if (workers or settings.server.workers) > 1 and METRICS_DIR_ENV not in os.environ:
        import tempfile  # every worker's /metrics adds up the totals the workers write there

        shared = os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="portico-metrics-")
    server = build_config(
        "portico.app:create_app_from_env",
        settings.server,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.logging.level.lower(),
    )
    try:
        return run(server)
    finally:
        if shared is not None:
            import shutil

            shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

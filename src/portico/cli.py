"""`portico serve | check-config | prompts apply|list | deployments apply|list | --version`: parse arguments and
hand over; no logic here."""

from __future__ import annotations

import argparse
import os
import sys

from portico import __version__


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
    _add_prompts(sub)
    _add_deployments(sub)
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "prompts":
        return prompts(args)
    if args.command == "deployments":
        return deployments(args)
    return serve_gateway(args.config, args.host, args.port, args.workers)


def check_config(path: str) -> int:
    from portico.app import validate_config

    problems = validate_config(path)
    if problems:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def _add_prompts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("prompts", help="stored prompts on a running gateway")
    actions = group.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help="create or update the prompts a YAML file declares (idempotent)")
    apply.add_argument("-f", "--file", required=True, help="YAML: a list of prompts, each with an `id`")
    listing = actions.add_parser("list", help="the latest version of every stored prompt")
    for action in (apply, listing):
        action.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
        action.add_argument("--key", default=None, help="a gateway key (default: $PORTICO_API_KEY)")


def prompts(args: argparse.Namespace) -> int:
    from portico.admin_client import AdminClient, AdminError
    from portico.config_as_code import apply_prompts, list_prompts, read_entries

    client = AdminClient(args.url, args.key)
    try:
        if args.action == "list":
            return list_prompts(client, print)
        entries = read_entries(args.file, "prompts")
        return apply_prompts(client, entries, print, lambda line: print(line, file=sys.stderr))
    except AdminError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def _add_deployments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("deployments", help="deployments on a running gateway")
    actions = group.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help="create or update the deployments a YAML file declares (idempotent)")
    apply.add_argument("-f", "--file", required=True, help="YAML: a list of deployments, each with a `key`")
    listing = actions.add_parser("list", help="the current version of every deployment")
    for action in (apply, listing):
        action.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
        action.add_argument("--key", default=None, help="a gateway key (default: $PORTICO_API_KEY)")


def deployments(args: argparse.Namespace) -> int:
    from portico.admin_client import AdminClient, AdminError
    from portico.config_as_code import read_entries
    from portico.deployments_as_code import apply_deployments, list_deployments

    client = AdminClient(args.url, args.key)
    try:
        if args.action == "list":
            return list_deployments(client, print)
        entries = read_entries(args.file, "deployments")
        return apply_deployments(client, entries, print, lambda line: print(line, file=sys.stderr))
    except AdminError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def serve_gateway(config: str | None, host: str | None, port: int | None, workers: int | None) -> int:
    from portico.app import validate_config
    from portico.config.load import load_settings
    from portico.http.server import build_config, run

    problems = validate_config(config)
    if problems:
        for problem in problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    settings = load_settings(config)
    if config:
        os.environ["PORTICO_CONFIG"] = os.path.abspath(config)
    server = build_config(
        "portico.app:create_app_from_env",
        settings.server,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.logging.level.lower(),
    )
    return run(server)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

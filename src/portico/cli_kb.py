"""`portico kb create|list|ingest|search|delete`: knowledge bases on a running gateway, through its admin API
(`/v1/admin/knowledge`), with the same `--url` / `--key` and exit codes as `portico prompts` (admin_client.py).

Exit codes: 0 done; 1 the gateway refused (the message says why) or an ingested file failed; 3 the gateway is
unreachable; 4 the key is refused. `ingest` lives in `cli_kb_ingest.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from portico.admin_client import AdminClient

BASES = "/v1/admin/knowledge"
SEARCH_TYPES = {"vector": "vector_search", "keyword": "keyword_search", "hybrid": "hybrid_search"}


def add_kb_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("kb", help="knowledge bases on a running gateway")
    actions = group.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a knowledge base")
    create.add_argument("kb_key", metavar="KEY")
    create.add_argument("--embedding-model", required=True, help="`provider/model`, e.g. openai/text-embedding-3-small")
    create.add_argument("--chunk-size", type=int, help="characters per chunk (words with --splitter token)")
    create.add_argument("--chunk-overlap", type=int, help="characters shared by consecutive chunks")
    create.add_argument("--splitter", choices=["recursive", "sentence", "paragraph", "token"])
    create.add_argument("--top-k", type=int, help="results per search unless the search says otherwise")
    create.add_argument("--threshold", type=float, help="minimum search score, 0..1")
    create.add_argument("--retrieval-type", choices=sorted(SEARCH_TYPES), help="default search type")
    create.add_argument("--rerank-model", help="`provider/model` of a rerank model")
    create.add_argument("--description")
    listing = actions.add_parser("list", help="every knowledge base")
    ingest = actions.add_parser("ingest", help="upload files or directories and wait until they are indexed")
    ingest.add_argument("kb_key", metavar="KEY")
    ingest.add_argument("paths", metavar="PATH", nargs="+", help="files, or directories read recursively")
    ingest.add_argument("--metadata", help="a JSON object added to every chunk's metadata (filterable)")
    ingest.add_argument("--no-wait", action="store_true", help="upload and return without waiting")
    ingest.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default: %(default)s)")
    search = actions.add_parser("search", help="search a knowledge base")
    search.add_argument("kb_key", metavar="KEY")
    search.add_argument("query")
    search.add_argument("--top-k", type=int)
    search.add_argument("--type", choices=sorted(SEARCH_TYPES), help="default: the base's retrieval type")
    search.add_argument("--threshold", type=float)
    search.add_argument("--filter", help='a metadata filter (JSON), e.g. \'{"file_type": {"eq": "pdf"}}\'')
    search.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
    delete = actions.add_parser("delete", help="delete a knowledge base with its datasources and chunks")
    delete.add_argument("kb_key", metavar="KEY")
    for action in (create, listing, ingest, search, delete):
        action.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
        action.add_argument("--key", default=None, help="a gateway key (default: $PORTICO_API_KEY)")


def run_kb(args: argparse.Namespace) -> int:
    from portico.admin_client import AdminClient, AdminError

    client = AdminClient(args.url, args.key)
    try:
        if args.action == "ingest":
            from portico.cli_kb_ingest import ingest

            metadata = _json_arg(args.metadata, "--metadata") if args.metadata else None
            return ingest(client, args.kb_key, args.paths, metadata, wait=not args.no_wait, timeout=args.timeout)
        return {"create": create, "list": list_bases, "search": search, "delete": delete}[args.action](client, args)
    except AdminError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def create(client: AdminClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"key": args.kb_key, "embedding_model": args.embedding_model}
    optional = {
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
        "splitter": args.splitter,
        "top_k": args.top_k,
        "threshold": args.threshold,
        "retrieval_type": SEARCH_TYPES.get(args.retrieval_type or ""),
        "description": args.description,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    if args.rerank_model:
        body["rerank"] = {"model": args.rerank_model}
    _, _, base = _expect(client.call("POST", BASES, body), f"knowledge base '{args.kb_key}'")
    print(f"created knowledge base {base.get('key', args.kb_key)}  ({_describe(base)})")
    return 0


def list_bases(client: AdminClient, args: argparse.Namespace) -> int:
    _, _, answer = _expect(client.call("GET", BASES), "the knowledge bases")
    bases = answer.get("data", []) if isinstance(answer, dict) else []
    for base in bases:
        description = f"  {base['description']}" if base.get("description") else ""
        print(f"{base.get('key')}  {_describe(base)}{description}")
    if not bases:
        print("no knowledge bases", file=sys.stderr)
    return 0


def search(client: AdminClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"query": args.query}
    if args.top_k is not None:
        body["top_k"] = args.top_k
    if args.type:
        body["search_type"] = SEARCH_TYPES[args.type]
    if args.threshold is not None:
        body["threshold"] = args.threshold
    if args.filter:
        body["filter_by"] = _json_arg(args.filter, "--filter")
    _, _, answer = _expect(client.call("POST", f"{BASES}/{quote(args.kb_key, safe='')}/search", body), _kb(args))
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    results = answer.get("data", []) if isinstance(answer, dict) else []
    for rank, hit in enumerate(results, 1):
        meta = hit.get("metadata") or {}
        page = f" p.{meta['page_number']}" if meta.get("page_number") is not None else ""
        scores = f"{hit.get('search_score', 0):.3f}"
        if hit.get("rerank_score") is not None:
            scores += f" rerank {hit['rerank_score']:.3f}"
        excerpt = " ".join(str(hit.get("text", "")).split())
        print(f"{rank:>2}. [{scores}] {meta.get('file_name', '-')}{page}\n    {excerpt[:300]}")
    if not results:
        print("no results", file=sys.stderr)
    return 0


def delete(client: AdminClient, args: argparse.Namespace) -> int:
    _expect(client.call("DELETE", f"{BASES}/{quote(args.kb_key, safe='')}"), _kb(args))
    print(f"deleted knowledge base {args.kb_key}")
    return 0


def _expect(result: tuple[int, dict[str, str], Any], what: str) -> tuple[int, dict[str, str], Any]:
    """The admin client returns 404 instead of raising it: here it means the base does not exist."""
    from portico.admin_client import AdminError

    if result[0] == 404:
        raise AdminError(f"{what} not found")
    return result


def _kb(args: argparse.Namespace) -> str:
    return f"knowledge base '{args.kb_key}'"


def _describe(base: dict[str, Any]) -> str:
    rerank = base.get("rerank") or {}
    parts = [
        str(base.get("embedding_model")),
        f"chunks {base.get('chunk_size')}/{base.get('chunk_overlap')} {base.get('splitter')}",
        f"{base.get('retrieval_type')} top_k {base.get('top_k')}",
    ]
    if rerank.get("model"):
        parts.append(f"rerank {rerank['model']}")
    return ", ".join(parts)


def _json_arg(raw: str, flag: str) -> Any:
    from portico.admin_client import AdminError

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise AdminError(f"{flag} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise AdminError(f"{flag} must be a JSON object")
    return value

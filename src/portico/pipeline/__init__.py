"""The request path between the HTTP surface and the providers: one ordered list of stages around the routed call.

    stage (module)          phase   what it does                                     active when the request…
    prompt (prompts.py)     before  resolve a stored prompt or deployment → messages  names `prompt` / a deployment
    variables (rendering)   before  render `variables` into every message             carries `variables`
    retrieval (retrieval)   before  query knowledge bases → context messages          names `knowledge_bases`
    guardrails (guarding)   both    check or redact the input (no upstream call on a  names `guardrails` / hooks
                                    violation); restore redacted PII in the answer
    limits (limits.py)      before  admit by rate and budget limits (next)            matches a configured limit
    cache (caching.py)      both    exact-match read; write a complete answer         asks for `cache`
    output guard (guarding) after   check / heal the answer (streams: held back)      names `guardrails` / hooks
    ── routed call (attempts.py over routing.py + retry.py): retries, fallbacks, load balancing, timeouts ──
    relay (streaming.py)    stream  shape usage for the client, mark partial streams  always (streams)
    record                  edge    the HTTP layer records every exchange once sent   always (off the hot path)

`gateway.build_stages` is the one place the list is built; a new stage is one module (a `stages.Stage`) and one
line there. `before` hooks run top to bottom and may answer (a cache hit), `after` hooks bottom to top over the
stages that ran, so output checks see an answer before the cache stores it. A stage that is not active costs one
`active()` call. Stages state lives on `stages.Call`; what serving produced lives on `served.Served`.
"""

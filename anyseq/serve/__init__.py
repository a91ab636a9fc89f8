"""Serving AnySeq: an OpenAI-compatible chat API and a web chat from one process.

AnyGPT's point is that one model reads and writes every modality (Zhan et al., ACL 2024);
this package puts that model behind the interfaces people already use: the OpenAI chat
completions API (text, `image_url`, `input_audio` in; text, `message.audio` and images
out) and a browser chat at `/ui`.

    app.py       create_app: routes, OpenAI-style errors, streaming, disconnects
    schemas.py   the request and response models (the OpenAPI schema)
    messages.py  OpenAI messages <-> AnySeq conversations, the reply policy, audio ids
    limits.py    request limits, checked while reading and before media is decoded
    remote.py    fetching remote images (off by default; public addresses only, no redirects)
    batching.py  the queue that batches requests arriving together into `chat_batch`
    errors.py    ApiError and the `{"error": {...}}` responses
    settings.py  ServeSettings
    ui.py        the Gradio web chat mounted at /ui
    server.py    running the app with uvicorn (in the foreground, or in a thread for tests)
    cli.py       `anyseq serve`
    bench.py     `anyseq bench serve`: requests/s and latency, batching on and off

Nothing is imported here, so that `anyseq --help` does not load the server's packages:
`from anyseq.serve.app import create_app`.
"""

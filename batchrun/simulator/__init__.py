"""An offline Gemini-compatible provider with fault injection.

    inbound   what a request asks for          faults     profiles, faults file, seeded decisions
    pixels    output sizes per model           limits     per-minute windows, per-day quota
    schema    a value for a response schema    patterns   strings that match a schema's pattern
    content   text, images and token counts    core       one request in, one SimReply out
    render    Pillow drawing                   replies    Google-shaped JSON bodies
    pngstrips PNGs from cached row blocks      lettering  text from cached glyphs
    server    the aiohttp HTTP server (`serve`)            transport  the in-process httpx transport
    chatinbound  a chat body as a GenerateRequest         chatreplies  OpenAI-shaped bodies and headers
    chatroute    the OpenAI-compatible chat route          imagestore   images served by URL
    files        the Files API store, on disk              batches      batches and their clock
    batchlines   batch lines answered and written out      batchroute   the Files and Batch API routes
    tokendist    seeded token counts (faults `tokens:`)
"""

# `batchrun simulate --help` and `python -m batchrun.simulator --help` show this
SIMULATE_DETAILS = """\
Routes: POST /v1beta/models/MODEL:generateContent (also :streamGenerateContent, :countTokens) and the
OpenAI-compatible POST /v1/chat/completions (also /v1beta/openai/chat/completions), which share the
faults, limits and request log. Faults-file settings for the chat route: refusal (a fault, rate or
schedule), chat_image_shape (images | markdown | parts | url | rotate; a request's sim_image_shape
overrides it), ratelimit_headers (true | false: x-ratelimit-* headers when per-minute limits are
set), image_url_fault (a rate or schedule: GETs of url-shape image links answered 503).

Limits per API key (the key of x-goog-api-key, Authorization: Bearer or ?key=): limits.per_key: true
counts the faults file's limits for each key on its own, as for keys of different projects; key_limits
(KEY: {requests_per_minute, images_per_minute, tokens_per_minute, requests_per_day, day_s}) gives a key
limits of its own. Either way the request log numbers each key in the order first seen ("key": 1, 2, ...),
never the key itself, and each key is a project of its own for Batch Mode and the Files API: a file or
batch is seen only with the key that made it (another key is answered 403 PERMISSION_DENIED, and listings
show a key's own). A key listed in bad_keys is answered 400 API_KEY_INVALID (401 on the chat route).

Batch Mode and the Files API: POST /upload/v1beta/files (resumable upload: start, then upload /
upload, finalize chunks at X-Goog-Upload-Offset), GET/DELETE /v1beta/files[/ID], GET
/download/v1beta/files/ID:download?alt=media (results files, streamed), POST
/v1beta/models/MODEL:batchGenerateContent (fileName or inline requests), GET /v1beta/batches[/ID]
(newest first, pageSize/pageToken), POST /v1beta/batches/ID:cancel, DELETE /v1beta/batches/ID.
Files live in a temporary folder removed at exit. Faults-file settings under batch: pending_s and
running_s (the batch clock, default 1 and 2: PENDING, RUNNING, then SUCCEEDED), and, each a rate or
schedule: stuck_pending, expired, failed, partial_results (over batches by creation order),
missing_key, repeated_key (over the lines of each batch), download_unavailable (over results
downloads: 503); line_padding_bytes (whitespace added to every results line). The generate faults
apply to batch lines: blocked, safety, no_image, max_tokens as the line's reply; server_error,
unavailable, billing_402, prepaid_429 as the line's error. The request log gets one batch.line line
per line answered (body_sha256 of the line's request as compact JSON, and "batch": its name).

Service tiers: serviceTier standard | flex | priority (lowercase; any other spelling is a 400) is reported
back in usageMetadata.serviceTier and the x-gemini-service-tier header. Faults-file settings: flex
(latency: extra time for flex replies; capacity: a rate or schedule of flex requests shed;
capacity_status: 503 or 429), priority_downgrade (a share of priority requests served at standard).

Token counts: a faults file's tokens section gives output text and thinking tokens a seeded log-normal
distribution per request, for every model or per model: tokens: {thinking: {mean: 2000, spread: 0.5},
text: {mean: 300, spread: 0.5}, models: {MODEL: {thinking: ...}}} (mean: the expected count; spread:
the sd of its log). The draw comes from the request and --seed; maxOutputTokens still cuts it."""

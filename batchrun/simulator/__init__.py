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
"""

# `batchrun simulate --help` and `python -m batchrun.simulator --help` show this
SIMULATE_DETAILS = """\
Routes: POST /v1beta/models/MODEL:generateContent (also :streamGenerateContent, :countTokens) and the
OpenAI-compatible POST /v1/chat/completions (also /v1beta/openai/chat/completions), which share the
faults, limits and request log. Faults-file settings for the chat route: refusal (a fault, rate or
schedule), chat_image_shape (images | markdown | parts | url | rotate; a request's sim_image_shape
overrides it), ratelimit_headers (true | false: x-ratelimit-* headers when per-minute limits are
set), image_url_fault (a rate or schedule: GETs of url-shape image links answered 503).
Service tiers: serviceTier standard | flex | priority (lowercase; any other spelling is a 400) is reported
back in usageMetadata.serviceTier and the x-gemini-service-tier header. Faults-file settings: flex
(latency: extra time for flex replies; capacity: a rate or schedule of flex requests shed;
capacity_status: 503 or 429), priority_downgrade (a share of priority requests served at standard)."""

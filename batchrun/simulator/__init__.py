"""An offline Gemini-compatible provider with fault injection.

    inbound   what a request asks for          faults    profiles, faults file, seeded decisions
    pixels    output sizes per model           limits    per-minute windows, per-day quota
    render    Pillow drawing                   core      one request in, one SimReply out
    content   text, images and token counts    server    the aiohttp HTTP server (`serve`)
    replies   Google-shaped JSON bodies        transport the in-process httpx transport
"""

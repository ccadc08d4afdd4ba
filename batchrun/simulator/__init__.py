"""An offline Gemini-compatible provider with fault injection.

    inbound   what a request asks for          faults     profiles, faults file, seeded decisions
    pixels    output sizes per model           limits     per-minute windows, per-day quota
    schema    a value for a response schema    patterns   strings that match a schema's pattern
    content   text, images and token counts    core       one request in, one SimReply out
    render    Pillow drawing                   replies    Google-shaped JSON bodies
    pngstrips PNGs from cached row blocks      lettering  text from cached glyphs
    server    the aiohttp HTTP server (`serve`)            transport  the in-process httpx transport
"""

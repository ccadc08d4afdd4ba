"""What a successful reply says: its text, its images and its token counts.

Everything here is a function of (request, model, seed): the same request with the same seed gives
the same text and the same image bytes, in any run. Token counts follow batchrun's own rules (text
four characters a token, input images by model family, output images by model and imageSize), so an
estimate made before sending can be compared with what the simulator reports.

Output tokens are spent as Gemini spends them: thinking first, then the answer's text, both out of
`maxOutputTokens`; when it runs out the reply is cut (`truncated`: MAX_TOKENS), with empty text if
thinking used it all, and no image. Image tokens are not counted against it (Google documents
nothing either way). `make` decides all of this without drawing: its images are `ImageSpec`s,
drawn later by `ContentMaker.draw`, which a server may run off its event loop.

How many tokens a reply wants, before `maxOutputTokens` cuts it: by fixed rules (a plain-text answer
16 to 111 tokens, thinking 64 to 574 tokens scaled by the chat route's reasoning_effort, an image's
caption one short line), or, when the faults file has a `tokens:` section (`tokendist.py`), drawn
per request from its seeded log-normal distributions: thinking for a model that thinks (scaled and
capped by thinkingBudget as before), text for a plain-text answer, a JSON answer without a schema,
or an image's caption (an answer to a responseSchema keeps its own length).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

from batchrun.cost.modeltable import ModelInfo, input_image_tokens, lookup_model
from batchrun.cost.tokens import CHARS_PER_TOKEN, text_tokens

from .inbound import GenerateRequest
from .pixels import image_pixels
from .render import CanvasCache, ImageCache, render_image
from .schema import schema_instance
from .tokendist import TokenDistributions, draw_tokens

_VOCAB = (
    "the batch", "runs", "quietly", "overnight", "and", "each", "request", "returns", "a",
    "plausible", "answer", "with", "measured", "tokens", "while", "images", "show", "colour",
    "light", "texture", "detail", "balanced", "crisp", "soft", "warm", "bright", "clean", "simple",
)
_UNKNOWN_OUTPUT_IMAGE_TOKENS = 1290
MIN_TEXT_TOKENS, MAX_TEXT_TOKENS = 16, 111  # a text answer's length, as the README states
MIN_THINKING_TOKENS = 64  # a thinking model thinks 64 to 574 tokens a request, before any answer
ENUM_MIME = "text/x.enum"  # Gemini's enum mode: the answer is one of the schema's enum values, bare
_LEVEL_SCALE = {"minimal": 0.125, "low": 0.5, "medium": 1.0, "high": 2.0}  # thinking tokens, against the default


@dataclass(slots=True)
class ModelPlan:
    """What the model will produce for one request: modalities, image size and token rates."""

    model: str
    info: ModelInfo | None
    wants_text: bool
    wants_image: bool
    pixels: tuple[int, int] | None
    image_tokens: int
    thinks: bool
    gemini3_image: bool


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """One image to draw: its size, the prompt it shows, the digest its colours come from, a label."""

    width: int
    height: int
    prompt: str
    digest: bytes
    label: str = ""


@dataclass(slots=True)
class Content:
    """The parts of one successful reply, before any fault touches it."""

    text: str | None
    image: ImageSpec | None
    thought_images: list[ImageSpec] = field(default_factory=list)
    prompt_text_tokens: int = 0
    prompt_image_tokens: int = 0
    out_text_tokens: int = 0
    out_image_tokens: int = 0
    thoughts_tokens: int = 0
    truncated: bool = False


def plan_for(model: str, request: GenerateRequest) -> ModelPlan:
    """The model plan; UnsupportedImageConfig for an image option the model lacks, SchemaError for a bad schema."""
    info = lookup_model(model)
    modalities = request.modalities
    wants_image = "IMAGE" in modalities or (not modalities and info is not None and info.image_output)
    wants_text = "TEXT" in modalities or not modalities
    pixels = None
    if wants_image:
        pixels = image_pixels(
            info.family if info else None,
            request.aspect_ratio,
            request.image_size,
            allowed_ratios=info.aspect_ratios if info else (),
            allowed_sizes=info.image_sizes if info else (),
        )
    if request.response_schema is not None:
        schema_instance(request.response_schema, random.Random(0), _VOCAB)  # SchemaError: no value fits it
    tokens = info.tokens_for_image_size(request.image_size) if info and info.image_output else 0
    thinks = info is not None and bool(info.default_thinking or info.thinking_levels)
    gemini3_image = info is not None and info.image_output and info.family.startswith("gemini-3")
    return ModelPlan(
        model, info, wants_text, wants_image, pixels, tokens or _UNKNOWN_OUTPUT_IMAGE_TOKENS,
        thinks and request.thinking_budget != 0, gemini3_image,
    )


def reply_digest(request: GenerateRequest, seed: int) -> bytes:
    """The 32 bytes everything in a reply is drawn from."""
    return hashlib.sha256(request.digest + seed.to_bytes(8, "big", signed=True)).digest()


def _filler(digest: bytes, count: int) -> str:
    stream = hashlib.shake_256(digest).digest(count)
    return " ".join(_VOCAB[b % len(_VOCAB)] for b in stream)


def _filler_chars(digest: bytes, chars: int) -> str:
    """Filler words from the same stream as `_filler`, just enough of them to pass `chars` characters."""
    words, length = [], 0
    for b in hashlib.shake_256(digest).digest(chars // 2 + 1):  # a word and its space take 2 or more
        words.append(_VOCAB[b % len(_VOCAB)])
        length += len(words[-1]) + 1
        if length > chars:
            break
    return " ".join(words)


def reply_text(request: GenerateRequest, plan: ModelPlan, digest: bytes, length: int | None = None) -> str:
    """A deterministic answer: JSON for a schema, else text quoting the prompt, 16 to 111 tokens long.

    `length` (a drawn count of tokens) sizes a caption, a plain answer or a schema-less JSON answer.
    """
    subject = " ".join(request.prompt.split())[:80] or "(no prompt)"
    if plan.wants_image:
        caption = f"Here is the image: {subject}"
        return caption if length is None else _sized(caption + ".", digest, length)
    if request.response_schema is not None:
        return _schema_answer(request.response_schema, request.response_mime, digest)
    if request.response_mime == "application/json":
        return _json_answer(subject, digest, length)
    tokens = MIN_TEXT_TOKENS + digest[20] % (MAX_TEXT_TOKENS - MIN_TEXT_TOKENS + 1) if length is None else length
    return _sized(f"Simulated answer from {plan.model} to: {subject}.", digest, tokens)


def _sized(opening: str, digest: bytes, tokens: int) -> str:
    """`opening` and filler words, cut to about `tokens` tokens and ended with a full stop."""
    text = f"{opening} {_filler_chars(digest, tokens * CHARS_PER_TOKEN)}"
    return text[: tokens * CHARS_PER_TOKEN - 1].rstrip() + "."


def _json_answer(subject: str, digest: bytes, length: int | None) -> str:
    if length is None:
        return json.dumps({"prompt": subject, "answer": _filler(digest, 12 + digest[20] % 80)})
    frame = json.dumps({"prompt": subject, "answer": ""})
    chars = max(1, length * CHARS_PER_TOKEN - len(frame) - 1)
    return json.dumps({"prompt": subject, "answer": _filler_chars(digest, chars)[:chars].rstrip()})


def _schema_answer(schema: dict, mime: str, digest: bytes) -> str:
    value = schema_instance(schema, random.Random(digest), _VOCAB)
    if mime == ENUM_MIME and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def thinking_tokens(plan: ModelPlan, request: GenerateRequest, digest: bytes, drawn: int | None = None) -> int:
    """Tokens the model thinks before answering (interim images aside), within its thinkingBudget.

    `drawn` (a count from the `tokens:` distributions) replaces the fixed rule's 64 to 574 tokens.
    """
    if not plan.thinks:
        return 0
    tokens = MIN_THINKING_TOKENS + digest[24] * 2 if drawn is None else drawn
    if request.thinking_level is not None:
        tokens = max(1, int(tokens * _LEVEL_SCALE[request.thinking_level]))
    budget = request.thinking_budget
    return min(tokens, budget) if budget is not None and budget > 0 else tokens


@dataclass(frozen=True, slots=True)
class OutputSpend:
    """How `maxOutputTokens` was spent: thinking, interim images kept, text tokens allowed."""

    thoughts: int
    thought_images: int
    text_allowed: int | None  # None: no limit left to apply
    truncated: bool


def spend_output(limit: int | None, thinking: int, thought_images: int, image_tokens: int,
                 text: int) -> OutputSpend:
    """Spend `limit` on thinking (interim images included), then on `text` tokens, as Gemini does."""
    wanted = thinking + thought_images * image_tokens
    if limit is None:
        return OutputSpend(wanted, thought_images, None, False)
    limit = max(0, limit)
    kept_images = 0
    while kept_images < thought_images and thinking + (kept_images + 1) * image_tokens <= limit:
        kept_images += 1
    thoughts = min(wanted, limit)
    left = limit - thoughts
    return OutputSpend(thoughts, kept_images, left, wanted > limit or text > left)


def _cut(text: str, tokens: int | None) -> str | None:
    """`text` within `tokens` (4 characters a token); None when no token is left for it."""
    if tokens is None or text_tokens(text) <= tokens:
        return text
    return text[: tokens * CHARS_PER_TOKEN] or None


class ContentMaker:
    """Makes the content of successful replies, and draws its images, keeping recent ones in an LRU."""

    def __init__(self, seed: int, image_mime: str = "image/png", cache_size: int = 64,
                 tokens: TokenDistributions | None = None) -> None:
        self.seed = seed
        self.tokens = tokens
        self.image_mime = image_mime
        self.cache = ImageCache(cache_size)
        self.canvases = CanvasCache()

    def draw(self, spec: ImageSpec) -> bytes:
        """The encoded image for a spec (cached: a retried request is not drawn again); thread-safe."""
        return self.cache.get_or_render(
            (spec, self.image_mime),
            lambda: render_image(spec.width, spec.height, spec.prompt, spec.digest, label=spec.label,
                                 mime=self.image_mime, canvases=self.canvases),
        )

    def make(self, model: str, request: GenerateRequest, plan: ModelPlan, thought_images: int) -> Content:
        """Text, images to draw and token counts of the normal reply to `request`."""
        digest = reply_digest(request, self.seed)
        length, drawn_thinking = self._drawn(model, digest)
        full_text = reply_text(request, plan, digest, length) if plan.wants_text else None
        interim = thought_images if plan.gemini3_image and plan.wants_image and plan.pixels else 0
        thinking = thinking_tokens(plan, request, digest, drawn_thinking)
        spend = spend_output(request.max_output_tokens, thinking, interim,
                             plan.image_tokens, text_tokens(full_text) if full_text else 0)
        text = _cut(full_text, spend.text_allowed) if full_text is not None else None
        image, drafts = None, []
        if plan.wants_image and plan.pixels and not spend.truncated:
            image = ImageSpec(*plan.pixels, request.prompt, digest)
        if plan.wants_image and plan.pixels:
            half = (plan.pixels[0] // 2, plan.pixels[1] // 2)
            drafts = [ImageSpec(*half, request.prompt, digest, f"thinking draft {i + 1}")
                      for i in range(spend.thought_images)]
        return Content(
            text=text,
            image=image,
            thought_images=drafts,
            prompt_text_tokens=request.prompt_text_tokens,
            prompt_image_tokens=sum(input_image_tokens(model, i.width, i.height) for i in request.images),
            out_text_tokens=text_tokens(text) if text else 0,
            out_image_tokens=plan.image_tokens if image is not None else 0,
            thoughts_tokens=spend.thoughts,
            truncated=spend.truncated,
        )

    def _drawn(self, model: str, digest: bytes) -> tuple[int | None, int | None]:
        """(text, thinking) tokens drawn from the `tokens:` distributions; None where none is set."""
        if self.tokens is None:
            return None, None
        text, thinking = self.tokens.text_for(model), self.tokens.thinking_for(model)
        return (
            draw_tokens(text, digest, "text") if text is not None else None,
            draw_tokens(thinking, digest, "thinking") if thinking is not None else None,
        )

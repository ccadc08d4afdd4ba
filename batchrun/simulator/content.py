"""What a successful reply says: its text, its images and its token counts.

Everything here is a function of (request, model, seed): the same request with the same seed gives
the same text and the same image bytes, in any run. Token counts follow batchrun's own rules (text
four characters a token, input images by model family, output images by model and imageSize), so an
estimate made before sending can be compared with what the simulator reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..models import ModelInfo, input_image_tokens, lookup_model
from ..tokens import text_tokens
from .inbound import GenerateRequest
from .pixels import image_pixels
from .render import ImageCache, render_image

_VOCAB = (
    "the batch", "runs", "quietly", "overnight", "and", "each", "request", "returns", "a",
    "plausible", "answer", "with", "measured", "tokens", "while", "images", "show", "colour",
    "light", "texture", "detail", "balanced", "crisp", "soft", "warm", "bright", "clean", "simple",
)
_UNKNOWN_OUTPUT_IMAGE_TOKENS = 1290


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


@dataclass(slots=True)
class Content:
    """The parts of one successful reply, before any fault touches it."""

    text: str | None
    image: bytes | None
    thought_images: list[bytes] = field(default_factory=list)
    prompt_text_tokens: int = 0
    prompt_image_tokens: int = 0
    out_text_tokens: int = 0
    out_image_tokens: int = 0
    thoughts_tokens: int = 0
    truncated: bool = False


def plan_for(model: str, request: GenerateRequest) -> ModelPlan:
    """The model plan; raises pixels.UnsupportedImageConfig for an image option the model lacks."""
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


def reply_text(request: GenerateRequest, plan: ModelPlan, digest: bytes) -> str:
    """A deterministic answer that quotes the prompt, 16 to 111 tokens long for text models."""
    subject = " ".join(request.prompt.split())[:80] or "(no prompt)"
    if plan.wants_image:
        return f"Here is the image: {subject}"
    words = 12 + digest[20] % 80
    text = f"Simulated answer from {plan.model} to: {subject}. {_filler(digest, words)}."
    if request.response_mime == "application/json":
        return json.dumps({"prompt": subject, "answer": _filler(digest, words)})
    return text


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is None or text_tokens(text) <= max_tokens:
        return text, False
    return text[: max(1, max_tokens) * 4], True


class ContentMaker:
    """Makes the content of successful replies, keeping recent images in a small LRU."""

    def __init__(self, seed: int, image_mime: str = "image/png", cache_size: int = 64) -> None:
        self.seed = seed
        self.image_mime = image_mime
        self.cache = ImageCache(cache_size)

    def image(self, request: GenerateRequest, size: tuple[int, int], digest: bytes, label: str = "") -> bytes:
        """The encoded image for a request at a size, cached by (digest, size, label)."""
        key = (digest, size, label, self.image_mime)
        return self.cache.get_or_render(
            key, lambda: render_image(*size, request.prompt, digest, label=label, mime=self.image_mime)
        )

    def make(self, model: str, request: GenerateRequest, plan: ModelPlan, thought_images: int) -> Content:
        """Text, image(s) and token counts of the normal reply to `request`."""
        digest = reply_digest(request, self.seed)
        text, truncated = (None, False)
        if plan.wants_text:
            text, truncated = _truncate(reply_text(request, plan, digest), request.max_output_tokens)
        image, thoughts_imgs = None, []
        if plan.wants_image and plan.pixels and not truncated:
            image = self.image(request, plan.pixels, digest)
            if plan.gemini3_image:
                half = (plan.pixels[0] // 2, plan.pixels[1] // 2)
                thoughts_imgs = [self.image(request, half, digest, f"thinking draft {i + 1}")
                                 for i in range(thought_images)]
        thoughts = (64 + digest[24] * 2) if plan.thinks else 0
        return Content(
            text=text,
            image=image,
            thought_images=thoughts_imgs,
            prompt_text_tokens=request.prompt_text_tokens,
            prompt_image_tokens=sum(input_image_tokens(model, i.width, i.height) for i in request.images),
            out_text_tokens=text_tokens(text) if text else 0,
            out_image_tokens=plan.image_tokens if image is not None else 0,
            thoughts_tokens=thoughts + len(thoughts_imgs) * plan.image_tokens,
            truncated=truncated,
        )

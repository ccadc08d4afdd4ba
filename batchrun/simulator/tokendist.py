"""Seeded distributions of output text and thinking tokens, from the faults file's `tokens:` section.

    tokens:
      thinking: {mean: 2000, spread: 0.5}     # every model that thinks
      text: {mean: 300, spread: 0.8}          # every free-text answer or image caption
      models:
        gemini-3-pro-image-preview:           # this model: its own, field by field
          thinking: {mean: 1500, spread: 0.3}

Each count is log-normal: `mean` is its expected value (not its median) and `spread` the standard
deviation of its logarithm (0 gives `mean` every time). A draw is a pure function of the reply's
digest (the request's digest and the server's `--seed`) and the stream's name, so the same request
on the same seed always gets the same count, another seed another one, and the thinking and text
draws of one reply are independent. Without a `tokens:` section (or without the field a reply
needs) the simulator keeps its fixed rules (`content.py`). The draw is what the model wants to
spend; `maxOutputTokens` and `thinkingBudget` still cut it as they cut the fixed rules' counts.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

from pydantic import BaseModel, ConfigDict, Field

_UNIT = NormalDist()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogNormal(_Strict):
    """A count of tokens per request: log-normal with expected value `mean` and log-sd `spread`."""

    mean: float = Field(gt=0)
    spread: float = Field(0.0, ge=0, le=3)

    def at(self, z: float) -> int:
        """The count at standard-normal score `z`: at least 1."""
        mu = math.log(self.mean) - self.spread**2 / 2  # so that E[count] is `mean`
        return max(1, round(math.exp(mu + self.spread * z)))


class TokenShape(_Strict):
    """The distributions of one model (or of all models): thinking and text tokens, each optional."""

    thinking: LogNormal | None = None
    text: LogNormal | None = None


class TokenDistributions(TokenShape):
    """The `tokens:` section: distributions for every model, and overrides per model name."""

    models: dict[str, TokenShape] = {}

    def thinking_for(self, model: str) -> LogNormal | None:
        """The thinking distribution of `model`: its own if named, else the section's."""
        own = self.models.get(model)
        return own.thinking if own is not None and own.thinking is not None else self.thinking

    def text_for(self, model: str) -> LogNormal | None:
        """The text distribution of `model`: its own if named, else the section's."""
        own = self.models.get(model)
        return own.text if own is not None and own.text is not None else self.text


def standard_score(digest: bytes, stream: str) -> float:
    """A standard-normal score drawn from `digest`, independent for each stream name."""
    bits = hashlib.sha256(digest + b"/tokens/" + stream.encode()).digest()[:8]
    u = (int.from_bytes(bits, "big") + 0.5) / 2**64  # strictly inside (0, 1)
    return _UNIT.inv_cdf(u)


def draw_tokens(distribution: LogNormal, digest: bytes, stream: str) -> int:
    """One seeded count of tokens from `distribution` for the reply with `digest`."""
    return distribution.at(standard_score(digest, stream))

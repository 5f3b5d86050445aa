"""The replies of an OpenAI-compatible endpoint, as data: pydantic models of the few fields pgkd reads (any other
field is allowed and ignored), and `read_reply`, which turns a reply body into one of them or raises BadReply.

A gateway in front of an endpoint can answer 200 with an HTML error page, cut a body short, or pass on a reply of
another shape; a model can put NaN into its log-probabilities. None of that may reach the teacher as data: the
body is parsed by pydantic alone (strict types, finite numbers only), so every way a body can be wrong is one
outcome, BadReply, which the backend counts and retries like a 5xx."""
from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_REASON_CHARS = 200


class BadReply(ValueError):
    """A reply body that is not the OpenAI reply asked for (not JSON, the wrong shape or types, NaN or inf)."""


class Shape(BaseModel):
    # strict: "5" is not a token count; no NaN or inf: a log-probability must be a number a softmax can use
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class Usage(Shape):
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)


class TextChoice(Shape):
    text: str


class TextReply(Shape):
    """/completions: one choice per sample."""

    choices: list[TextChoice] = Field(min_length=1)
    usage: Usage | None = None  # a gateway may drop it; the tokens are then not counted


class Message(Shape):
    content: str | None = None  # null where the model answered nothing (or a tool call)


class ChatChoice(Shape):
    message: Message = Message()


class ChatReply(Shape):
    """/chat/completions: one choice per sample."""

    choices: list[ChatChoice] = Field(min_length=1)
    usage: Usage | None = None


class EchoLogprobs(Shape):
    """Per token of the echoed prompt and the generated text: where it starts and its log-probability (null for
    the first token, which has no context)."""

    text_offset: list[int] = Field(min_length=1)
    token_logprobs: list[float | None]

    @model_validator(mode="after")
    def _one_value_per_token(self) -> "EchoLogprobs":
        if len(self.text_offset) != len(self.token_logprobs):
            raise ValueError(f"{len(self.text_offset)} offsets but {len(self.token_logprobs)} log-probabilities")
        return self


class EchoChoice(Shape):
    logprobs: EchoLogprobs  # asked for: null is a bad reply


class EchoReply(Shape):
    """/completions with echo and logprobs: prompt-token scoring. usage.completion_tokens says where the echoed
    prompt ends."""

    choices: list[EchoChoice] = Field(min_length=1)
    usage: Usage


class TopLogprob(Shape):
    token: str
    logprob: float


class TokenLogprob(Shape):
    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = []


class ChatLogprobs(Shape):
    content: list[TokenLogprob] = Field(min_length=1)  # the first token's is the one labelling reads


class ScoredChatChoice(Shape):
    message: Message = Message()
    logprobs: ChatLogprobs  # asked for: null is a bad reply


class ScoredChatReply(Shape):
    """/chat/completions with logprobs and top_logprobs: chat labelling."""

    choices: list[ScoredChatChoice] = Field(min_length=1)


class ModelCard(Shape):
    id: str


class ModelList(Shape):
    """/models."""

    data: list[ModelCard]


Reply = TypeVar("Reply", bound=Shape)


def read_reply(shape: type[Reply], body: bytes | str) -> Reply:
    """The body as `shape`, or BadReply saying briefly what was wrong (never any other exception)."""
    try:
        return shape.model_validate_json(body)
    except ValidationError as exc:
        raise BadReply(f"not an OpenAI {shape.__name__}: {describe(exc)}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # pydantic raises ValidationError; this is a belt
        raise BadReply(f"not an OpenAI {shape.__name__}: {type(exc).__name__}") from None


def describe(exc: ValidationError) -> str:
    """The first error, where it is and what it is, short enough for a log line."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"[:MAX_REASON_CHARS]

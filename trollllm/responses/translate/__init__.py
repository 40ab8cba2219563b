"""The OpenAI Responses API translated to the formats the gateway's upstreams speak (chat completions,
Anthropic messages) and back: requests, whole replies and streams, event by event."""

from trollllm.responses.translate.sealing import Sealer
from trollllm.responses.translate.streams import ResponsesStream
from trollllm.responses.translate.translation import ResponsesTranslation, translate_responses_request

__all__ = ["ResponsesStream", "ResponsesTranslation", "Sealer", "translate_responses_request"]

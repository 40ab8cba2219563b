"""OpenAI chat completions ⇄ Anthropic messages: requests, answers, streams and errors (SPEC §6)."""

from trollllm.translate.replies import UntranslatableReply
from trollllm.translate.sse import TranslatedStream
from trollllm.translate.translation import Translation, translate_request

__all__ = ["TranslatedStream", "Translation", "UntranslatableReply", "translate_request"]

"""The dashboard's first-call examples: curl, the OpenAI SDK and the Anthropic SDK, each with a Copy button.

Shown only to a caller whose key would be admitted (a plan with API access, or a model of one of their own
provider keys): a free user is shown the upgrade path instead of examples that answer 403.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snippet:
    """One example: the element id its Copy button targets, its label and its code."""

    id: str
    label: str
    code: str


def first_call_snippets(base_url: str, model_id: str | None) -> list[Snippet]:
    """The three examples against `base_url`, naming `model_id` (a placeholder when no model is enabled)."""
    model = model_id or "MODEL_ID"
    curl = (
        f"curl {base_url}/v1/chat/completions \\\n"
        '  -H "Authorization: Bearer $TROLLLLM_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\''
    )
    openai = (
        "import os\n"
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}/v1", api_key=os.environ["TROLLLLM_API_KEY"])\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{model}", messages=[{{"role": "user", "content": "Hello"}}]\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    anthropic = (
        "import os\n"
        "from anthropic import Anthropic\n\n"
        f'client = Anthropic(base_url="{base_url}", api_key=os.environ["TROLLLLM_API_KEY"])\n'
        "reply = client.messages.create(\n"
        f'    model="{model}", max_tokens=256, messages=[{{"role": "user", "content": "Hello"}}]\n'
        ")\n"
        "print(reply.content[0].text)"
    )
    return [
        Snippet("snippet-curl", "curl", curl),
        Snippet("snippet-openai", "Python, OpenAI SDK", openai),
        Snippet("snippet-anthropic", "Python, Anthropic SDK", anthropic),
    ]

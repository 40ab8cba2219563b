"""The OpenAI Responses API (`/v1/responses`, SPEC §6): the native route, the stored responses, the route
choice, and (under `translate/`) the translation to chat completions and messages."""

"""The OpenAI Responses API (`/v1/responses`): its translation to the upstream formats (`translate/`)."""

"""ASGI entry for multi-worker servers: `uvicorn trollllm.asgi:app` builds the app from the environment.

This is the one module that reads configuration on import, because worker processes import it by name.
"""

from trollllm.app import create_app
from trollllm.settings import Settings

app = create_app(Settings(), freeze_startup_objects=True)

"""ASGI entry for multi-worker servers: `uvicorn trollllm.asgi:app` builds the app from the environment.

This is the one module that reads configuration on import, because worker processes import it by name.
"""

from trollllm.app import create_app
from trollllm.serving import return_large_blocks_to_os
from trollllm.settings import Settings

return_large_blocks_to_os()  # a worker is a new process: glibc's settings are not inherited
app = create_app(Settings(), freeze_startup_objects=True)

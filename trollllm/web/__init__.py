"""The web surface: server-rendered dashboard pages (Jinja2) and the static assets they use."""

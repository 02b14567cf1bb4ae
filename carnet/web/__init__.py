"""The portals: server-rendered pages (Jinja2, Babel) over the same caller-bound services as the
API. Conventions in docs/web.md."""

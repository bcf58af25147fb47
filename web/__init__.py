"""`fitplan serve`: the page and its JSON API, and the SVG figures `fitplan plot` also draws.

Installed as `fitplan.web`. The server needs the [web] extra (Starlette, uvicorn,
python-multipart); the figures (`figures`, `memory_bar`, `plots`) need nothing beyond fitplan.
No formula lives here: every number comes from `fitplan.estimate` / `fitplan.recommend`.
"""

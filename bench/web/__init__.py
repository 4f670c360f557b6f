"""`bench demo`: interactive segmentation in the browser, for a person instead of the simulator.

Modules, one job each: `catalog` (which images, looked up by index only), `session` (the
predictor driven one request at a time, its state kept equal to a `bench run` of the same
clicks), `recording` (the JSONL click log that `--click-model replay:` reads back), `app`
(the FastAPI routes, limits and error replies) and `static/` (the page: plain HTML, CSS and
JavaScript served by the app itself, no CDN and no build step).
"""

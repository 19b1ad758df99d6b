"""HTTP serving of an export (PyTorch, no JAX): `python -m jaxcolor.serve`.

app.py      `create_app(model, limits)`: the FastAPI app, its body-size guard
routes.py   the endpoints (`/v1/colorize`, `/v1/hints`, `/v1/sketch`, `/v1/info`, probes)
forms.py    the form fields and their refusals, read into the model's inputs by `inference/`
state.py    `Limits`, the Prometheus `Metrics`, `ServerState` (the model, its batcher, warm-up)
batcher.py  micro-batching on a bounded queue, the model on one worker thread
static/     the hint-painting page
"""

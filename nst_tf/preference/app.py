"""The ``nst-prefer`` web page: two stylizations side by side, pick the one you like (Flask).

Needs the ``ui`` extra (``pip install nst-tf[ui]``); nothing else in nst_tf imports Flask.

Routes (JSON in and out):

* ``GET /``: the page (``?annotator=NAME`` tags the votes; default ``anonymous``).
* ``GET /api/state``: ``{"pair": {"id", "left", "right"}, "count", "best": {"image", "weights"}}``
  where ``left`` / ``right`` / ``image`` are image keys for ``GET /image/<key>.png``.
* ``POST /api/vote`` ``{"pair_id", "choice": "left"|"right"|"tie"|"skip", "client_id",
  "annotator"}`` → the new state. 400: malformed JSON, missing field, unknown choice; 404:
  unknown pair; 409: pair already answered (by another vote id) or replaced. Nothing is stored
  on an error; the same ``client_id`` again returns the state without a second vote.
* ``POST /api/undo`` → the state with the undone pair shown again (409 when nothing to undo).

Example:
    >>> import os, tempfile, numpy as np
    >>> from nst_tf.preference.store import PreferenceStore
    >>> from nst_tf.preference.session import PreferenceSession
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "p.sqlite"))
    >>> session = PreferenceSession(store, 3, render=lambda w: np.broadcast_to(w, (8, 8, 3)))
    >>> client = create_app(session).test_client()
    >>> client.post("/api/vote", data="{not json", content_type="application/json").status_code
    400
"""

from flask import Flask, Response, jsonify, request

from nst_tf.preference.store import StoreError


def create_app(session):
    """A Flask app serving ``session`` (a :class:`~nst_tf.preference.session.PreferenceSession`)."""
    app = Flask("nst_tf.preference")

    @app.errorhandler(StoreError)
    def store_error(error):
        return jsonify(error=str(error)), error.status

    @app.get("/")
    def page():
        return Response(PAGE, mimetype="text/html")

    @app.get("/api/state")
    def state():
        return jsonify(session.state())

    @app.post("/api/vote")
    def vote():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise StoreError("the request body must be a JSON object")
        missing = [k for k in ("pair_id", "choice", "client_id") if k not in body]
        if missing:
            raise StoreError(f"missing field(s): {', '.join(missing)}")
        if not isinstance(body["pair_id"], str):
            raise StoreError("pair_id must be a string")
        return jsonify(session.vote(body["pair_id"], body["choice"], body["client_id"],
                                    body.get("annotator", "anonymous")))

    @app.post("/api/undo")
    def undo():
        try:
            return jsonify(session.undo())
        except StoreError as e:
            return jsonify(error=str(e)), 409

    @app.get("/image/<key>.png")
    def image(key):
        png = session.image(key)
        if png is None:
            return jsonify(error=f"unknown image {key!r}"), 404
        return Response(png, mimetype="image/png",
                        headers={"Cache-Control": "max-age=86400, immutable"})

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nst-prefer: which do you like?</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5em; background: #f6f6f4; color: #222; }
 .pair { display: flex; gap: 1.5em; }
 .side { flex: 1; text-align: center; }
 .side img { max-width: 100%; max-height: 70vh; border: 1px solid #ccc; background: #ddd; }
 button { font-size: 1em; padding: .5em 1em; margin: .3em; }
 button:disabled { opacity: .4; }
 #best img { max-width: 160px; border: 1px solid #ccc; }
 .hint { color: #666; font-size: .9em; }
</style></head>
<body>
<h2>Which stylization do you prefer?</h2>
<div class="pair">
 <div class="side"><img id="left" alt="left"><br>
  <button id="choose-left" disabled>&larr; Left</button></div>
 <div class="side"><img id="right" alt="right"><br>
  <button id="choose-right" disabled>Right &rarr;</button></div>
</div>
<p><button id="tie" disabled>Tie (t)</button> <button id="skip" disabled>Skip (s)</button>
 <button id="undo">Undo (z)</button>
 <span class="hint">Keys: &larr; / &rarr; choose, t tie, s skip, z undo.</span></p>
<p>Comparisons: <b id="count">0</b> <span id="status"></span></p>
<div id="best"><h3>Best mix so far</h3><img id="best-image" alt="best mix">
 <div id="best-weights"></div></div>
<script>
const annotator = new URLSearchParams(location.search).get("annotator") || "anonymous";
let current = null, ready = false, busy = false;
const buttons = ["choose-left", "choose-right", "tie", "skip"].map(id => document.getElementById(id));
function setReady(value) { ready = value; buttons.forEach(b => b.disabled = !value); }
function load(src) {
  return new Promise((resolve, reject) => {
    const img = new Image(); img.onload = () => resolve(src); img.onerror = reject; img.src = src;
  });
}
async function show(state) {
  setReady(false);
  document.getElementById("count").textContent = state.count;
  const left = "/image/" + state.pair.left + ".png", right = "/image/" + state.pair.right + ".png";
  current = state.pair.id;
  await Promise.all([load(left), load(right)]);     // both decoded before they are shown
  if (current !== state.pair.id) return;
  document.getElementById("left").src = left;
  document.getElementById("right").src = right;
  document.body.dataset.pair = state.pair.id;
  setReady(true);
  document.getElementById("best-image").src = "/image/" + state.best.image + ".png";
  document.getElementById("best-weights").textContent =
    state.best.weights.map(w => "style " + w.style + ": " + w.weight).join(", ");
}
async function post(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body || {})});
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.status);
  return data;
}
async function vote(choice) {
  if (!ready || busy) return;
  busy = true; setReady(false);
  const body = {pair_id: current, choice: choice, annotator: annotator,
                client_id: (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()))};
  document.getElementById("status").textContent = "";
  try {
    let state;
    for (let attempt = 0; ; attempt++) {       // retries reuse the vote id: counted once
      try { state = await post("/api/vote", body); break; }
      catch (e) { if (attempt >= 2 || !(e instanceof TypeError)) throw e; }
    }
    await show(state);
  } catch (e) {
    document.getElementById("status").textContent = "error: " + e.message;
    setReady(true);
  } finally { busy = false; }
}
async function undo() {
  if (busy) return;
  busy = true;
  try { await show(await post("/api/undo")); }
  catch (e) { document.getElementById("status").textContent = e.message; }
  finally { busy = false; }
}
document.getElementById("choose-left").onclick = () => vote("left");
document.getElementById("choose-right").onclick = () => vote("right");
document.getElementById("tie").onclick = () => vote("tie");
document.getElementById("skip").onclick = () => vote("skip");
document.getElementById("undo").onclick = undo;
document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const action = {ArrowLeft: () => vote("left"), ArrowRight: () => vote("right"),
                  t: () => vote("tie"), s: () => vote("skip"), z: undo}[e.key];
  if (action) { e.preventDefault(); action(); }
});
fetch("/api/state").then(r => r.json()).then(show);
</script>
</body></html>
"""

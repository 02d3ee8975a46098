"""The ``nst-prefer`` web page: pick the stylization you like, in a 2×2 grid or a pair (Flask).

Needs the ``ui`` extra (``pip install nst-tf[ui]``); nothing else in nst_tf imports Flask.

Routes (JSON in and out), for a session of grids of four (``grid4``):

* ``GET /``: the page (``?annotator=NAME`` tags the answers; default ``anonymous``).
* ``GET /api/state``: ``{"question": {"id", "options": [4 image keys]}, "count", "best":
  {"image", "weights": [{"style", "weight", "image"}]}}``; images are ``GET /image/<key>.png``.
* ``POST /api/vote`` ``{"question_id", "choice": 0-3 | "none" | "skip", "client_id",
  "annotator"}`` → the new state.
* ``POST /api/undo`` → the state with the undone question shown again (409: nothing to undo).

For a session of pairs the state holds ``"pair": {"id", "left", "right"}`` and a vote is
``{"pair_id", "choice": "left"|"right"|"tie"|"skip", "client_id", "annotator"}`` (the first
``nst-prefer``'s API, unchanged).

Every request body goes through one parser (:func:`read_body`): at most
:data:`MAX_BODY_BYTES` (else 413), JSON nested at most :data:`MAX_DEPTH` deep, an object with
exactly the fields of the route, of the right types; anything else is a 400 and nothing is
stored. 404: unknown question; 409: a question already answered (by another vote id) or
replaced. The same ``client_id`` again returns the state without a second vote.

Example:
    >>> import os, tempfile, numpy as np
    >>> from nst_tf.preference.store import PreferenceStore
    >>> from nst_tf.preference.session import PreferenceSession
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "p.sqlite"))
    >>> session = PreferenceSession(store, 3, render=lambda w: np.broadcast_to(w, (8, 8, 3)))
    >>> client = create_app(session).test_client()
    >>> client.post("/api/vote", data="[" * 5000, content_type="application/json").status_code
    400
"""

import json

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from nst_tf.preference.pages import PAGES
from nst_tf.preference.store import StoreError

#: Largest request body accepted (Flask's ``MAX_CONTENT_LENGTH``): a vote is ~200 bytes.
MAX_BODY_BYTES = 16 * 1024
#: Deepest JSON nesting accepted; a vote is one flat object.
MAX_DEPTH = 4


class BodyError(StoreError):
    """A request body that is not the JSON object the route expects (HTTP 400)."""


def json_depth(text):
    """Deepest nesting of ``[`` / ``{`` in JSON ``text``, outside strings (no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _body_bytes():
    """The raw request body; 413 if it is over :data:`MAX_BODY_BYTES`.

    Flask refuses a ``Content-Length`` over the cap before reading; a chunked body (no length)
    Werkzeug would cut at the cap without a word, so it is read here, one byte past the cap.
    """
    if not request.environ.get("wsgi.input_terminated") or request.content_length is not None:
        return request.get_data(cache=False)
    stream, chunks, size = request.environ["wsgi.input"], [], 0
    while size <= MAX_BODY_BYTES:
        chunk = stream.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_BODY_BYTES:
        raise RequestEntityTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    return b"".join(chunks)


def read_body(fields):
    """The request's JSON object, checked against ``fields`` ``{name: (types, required)}``.

    Raises :class:`BodyError` (400) for a body that is not UTF-8 JSON, nested deeper than
    :data:`MAX_DEPTH`, not an object, missing a required field, with an unknown field or a
    field of the wrong type; Flask answers 413 for a body over :data:`MAX_BODY_BYTES`. The
    parser never recurses on untrusted nesting: the depth is checked before ``json.loads``.
    """
    raw = _body_bytes()
    if not raw.strip():
        body = {}
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("the request body must be UTF-8 JSON") from None
        if json_depth(text) > MAX_DEPTH:
            raise BodyError(f"the request body is nested deeper than {MAX_DEPTH} levels")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise BodyError(f"the request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise BodyError("the request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BodyError(f"unknown field(s): {', '.join(unknown)}")
    missing = [k for k, (_, required) in fields.items() if required and k not in body]
    if missing:
        raise BodyError(f"missing field(s): {', '.join(missing)}")
    for name, (types, _) in fields.items():
        if name in body and (not isinstance(body[name], types) or isinstance(body[name], bool)):
            raise BodyError(f"{name} must be {' or '.join(t.__name__ for t in types)}, got "
                            f"{type(body[name]).__name__}")
    return body


#: Fields of a vote, per kind of question: {name: (types, required)}.
VOTE_FIELDS = {
    "pair": {"pair_id": ((str,), True), "choice": ((str,), True), "client_id": ((str,), True),
             "annotator": ((str,), False)},
    "grid4": {"question_id": ((str,), True), "choice": ((int, str), True),
              "client_id": ((str,), True), "annotator": ((str,), False)},
}


def create_app(session):
    """A Flask app serving ``session`` (a :class:`~nst_tf.preference.session.PreferenceSession`)."""
    app = Flask("nst_tf.preference")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["nst_session"] = session    # for whoever runs the app, to close it
    kind = session.kind
    vote_fields = VOTE_FIELDS[kind.name]

    @app.errorhandler(StoreError)
    def store_error(error):
        return jsonify(error=str(error)), error.status

    @app.errorhandler(HTTPException)
    def http_error(error):   # 404, 405, 413 ...: JSON like every other answer
        return jsonify(error=f"{error.code} {error.name}: {error.description}"), error.code

    @app.get("/")
    def page():
        return Response(PAGES[kind.name], mimetype="text/html")

    @app.get("/api/state")
    def state():
        return jsonify(session.state())

    @app.post("/api/vote")
    def vote():
        body = read_body(vote_fields)
        return jsonify(session.vote(body[kind.id_field], body["choice"], body["client_id"],
                                    body.get("annotator", "anonymous")))

    @app.post("/api/undo")
    def undo():
        read_body({})
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

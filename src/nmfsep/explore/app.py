"""The explore page's Flask application and the WSGI server that runs it.

Sessions: a browser gets a random session id in a cookie on its first API call (/api/state,
which the page makes as it loads, or any other; loading the page alone makes none); the server keeps at most
``max_sessions`` of them (the least recently used is dropped, with its upload), and each holds
one excerpt of audio (at most views.MAX_EXCERPT seconds) and what was computed from it (its
spectrogram, the k view's sweep, the Step view's W and H). Uploads above ``max_upload_mb`` are
refused before they are read. Every error reaches the page as JSON ``{"error": message}`` (400
for what the user can fix, 404/405/410/413 as HTTP says, 500 for a bug), never a traceback.

API (POST bodies are JSON; every answer is JSON):

    GET  /                 the page (static/index.html)
    GET  /api/state        the session's excerpt and the limits
    POST /api/upload       multipart 'file': a new excerpt of that file, from 0 s
    POST /api/excerpt      {start, duration}: another excerpt of the same file (seconds)
    POST /api/playground   {n_sources, f0s, periods, duration, seed[, separate, grouping]}
    POST /api/k            {k}: view 1;  POST /api/step/start {k, beta, init}, /api/step {updates}: 2
    POST /api/pca {k}: 3;  /api/kmeans {k}: 4;  /api/deep {k1, k2, beta}: 5
    POST /api/separate     {n_sources, grouping}: view 6
"""

from collections import OrderedDict
from dataclasses import dataclass, field
import errno
import ipaddress
import os
import secrets
import shutil
import socket
import tempfile
import threading

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import secure_filename

from ..errors import NmfsepError
from . import views

MAX_UPLOAD_MB = 50
MAX_SESSIONS = 8
COOKIE = "nmfsep_explore"


class Expired(NmfsepError):
    """A session id the server no longer (or never) held."""


@dataclass
class Session:
    """One browser's state: the file its excerpt comes from (None: the playground), the excerpt,
    and what was computed from it (dropped whenever the excerpt changes)."""

    id: str
    folder: str
    path: str | None = None
    name: str = ""
    excerpt: views.Excerpt | None = None
    analysis: views.Analysis | None = None
    sweep: views.RankSweep | None = None
    step: views.StepState | None = None
    dropped: bool = False               # set (before its folder is removed) when evicted
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def use(self, excerpt: views.Excerpt, path: str | None = None, name: str = "") -> None:
        self.excerpt, self.path, self.name = excerpt, path, name or excerpt.name
        self.analysis = self.sweep = self.step = None

    def analysed(self) -> views.Analysis:
        if self.analysis is None:
            self.analysis = views.analyse(self.excerpt)
        return self.analysis

    def rank_sweep(self) -> views.RankSweep:
        """The factorizations of every k (views.rank_sweep), made on first use per excerpt."""
        if self.sweep is None:
            self.sweep = views.rank_sweep(self.analysed())
        return self.sweep

    def k_max(self) -> int:
        return self.excerpt.k_max


class Sessions:
    """At most ``limit`` sessions, least recently used first out; uploads live in ``folder``."""

    def __init__(self, limit: int, folder: str, first_excerpt):
        self.limit, self.folder, self.first_excerpt = limit, folder, first_excerpt
        self.held: OrderedDict[str, Session] = OrderedDict()
        self.lock = threading.Lock()

    def new(self) -> Session:
        sid = secrets.token_urlsafe(18)
        session = Session(sid, os.path.join(self.folder, sid))
        session.use(*self.first_excerpt())
        with self.lock:
            self.held[sid] = session
            while len(self.held) > self.limit:
                _, old = self.held.popitem(last=False)
                old.dropped = True                  # an upload under way removes what it wrote
                shutil.rmtree(old.folder, ignore_errors=True)
        return session

    def get(self, sid: str | None) -> Session | None:
        with self.lock:
            session = self.held.get(sid) if sid else None
            if session is not None:
                self.held.move_to_end(sid)
            return session


def create_app(input_path: str | None = None, *, max_sessions: int = MAX_SESSIONS,
               max_upload_mb: float = MAX_UPLOAD_MB, loopback_only: bool = True) -> Flask:
    """The explore app for INPUT (its first views.DEFAULT_EXCERPT seconds to start with), or
    for the synthetic playground (input_path None). Reads the input's first excerpt at once:
    AudioError (an NmfsepError) for an unreadable input, before anything is served.

    loopback_only: answer only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]),
    so that a page of another site whose name was made to point at 127.0.0.1 (DNS rebinding)
    cannot use the server; False where it listens on another interface (--host)."""
    if input_path == "-":
        raise NmfsepError("<stdin>: explore reads its input again for every page and excerpt; save the "
                          "stream to a file and give that")
    if input_path is not None:
        views.read_excerpt(input_path)

    def first_excerpt():
        if input_path is None:
            return (views.playground(),)
        return views.read_excerpt(input_path), input_path

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2**20)
    uploads = tempfile.TemporaryDirectory(prefix="nmfsep-explore-")
    sessions = Sessions(max_sessions, uploads.name, first_excerpt)
    stopping = threading.Event()
    app.extensions["nmfsep_explore"] = {"sessions": sessions, "uploads": uploads, "stopping": stopping}
    limits = {"max_upload_mb": max_upload_mb, "max_excerpt": views.MAX_EXCERPT,
              "default_excerpt": views.DEFAULT_EXCERPT, "k_max": views.K_MAX, "step_max": views.STEP_MAX,
              "max_sessions": max_sessions}

    expired = (f"this page's session has ended (the server keeps the {max_sessions} most recent "
               f"ones, and forgets them when it stops): reload the page")

    def current(create: bool = False) -> Session:
        sid = request.cookies.get(COOKIE)
        session = sessions.get(sid)
        if session is None and sid and not create:
            raise Expired(expired)
        if session is None:
            session = sessions.new()
        request.environ["nmfsep.session"] = session
        return session

    @app.after_request
    def remember(response):
        session = request.environ.get("nmfsep.session")
        if session is not None and request.cookies.get(COOKIE) != session.id:
            response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict")
        return response

    def state(session: Session) -> dict:
        return {"excerpt": session.excerpt.describe(), "limits": limits}

    def with_axes(session: Session, payload: dict) -> dict:
        payload["axes"] = session.analysed().axes(session.excerpt.duration)
        payload["excerpt"] = session.excerpt.describe()
        return payload

    @app.get("/")
    def page():                         # no session yet: the page's first API call makes one
        return app.send_static_file("index.html")

    @app.get("/api/state")
    def get_state():
        session = current(create=True)
        return jsonify(state(session))

    @app.post("/api/upload")
    def upload():
        session = current()
        sent = request.files.get("file")
        if sent is None or not sent.filename:
            raise NmfsepError("no file was sent: choose an audio file to upload")
        name = os.path.basename(sent.filename.replace("\\", "/"))[:200] or "upload"
        stored = secure_filename(name) or "upload"
        with session.lock:
            os.makedirs(session.folder, exist_ok=True)
            incoming = os.path.join(session.folder, "incoming-" + stored)   # keeps the extension
            try:
                sent.save(incoming)
                excerpt = views.read_excerpt(incoming, 0.0, views.DEFAULT_EXCERPT, name=name)
            except BaseException:
                if os.path.exists(incoming):
                    os.unlink(incoming)
                if session.dropped:             # its folder went away under the upload
                    shutil.rmtree(session.folder, ignore_errors=True)
                    raise Expired(expired) from None
                raise
            if session.path and session.path.startswith(session.folder + os.sep):
                os.unlink(session.path)                 # the session's previous upload
            path = os.path.join(session.folder, stored)
            os.replace(incoming, path)
            if session.dropped:                 # evicted meanwhile: makedirs made its folder again
                shutil.rmtree(session.folder, ignore_errors=True)
                raise Expired(expired)
            session.use(excerpt, path, name)
            return jsonify(state(session))

    @app.post("/api/excerpt")
    def excerpt():
        session = current()
        body = payload()
        start = number(body, "start", 0.0, 1e7, 0.0)
        duration = number(body, "duration", 0.0, 1e7, views.DEFAULT_EXCERPT)
        with session.lock:
            if session.path is None:
                raise NmfsepError("the playground's mixture is synthetic: move its sources instead, "
                                  "or upload a recording")
            session.use(views.read_excerpt(session.path, start, duration, name=session.name),
                        session.path, session.name)
            return jsonify(state(session))

    @app.post("/api/playground")
    def playground():
        session = current()
        body = payload()
        n_sources = whole(body, "n_sources", 2, 3, 2)
        from ..demo import MAX_F0, MIN_F0

        f0s = tones(body, "f0s", n_sources, "pitch", MIN_F0, MAX_F0, "Hz")
        periods = tones(body, "periods", n_sources, "rhythm", 0.1, 10.0, "s")
        duration = number(body, "duration", 0.0, 1e7, views.DEFAULT_EXCERPT)
        seed = whole(body, "seed", 0, 2**31 - 1, 0)
        excerpt = views.playground(n_sources, f0s, periods, duration, seed)
        with session.lock:
            session.use(excerpt)
            answer = state(session)
            if body.get("separate"):
                grouping = choice(body, "grouping", views.GROUPINGS, "none")
                answer["separation"] = with_axes(session, views.separate_view(
                    session.excerpt, session.analysed(), n_sources, grouping))
            return jsonify(answer)

    @app.post("/api/k")
    def k_view():
        session = current()
        body = payload()
        with session.lock:
            k = whole(body, "k", 1, session.k_max())
            return jsonify(with_axes(session, views.k_view(session.analysed(), session.rank_sweep(), k)))

    @app.post("/api/step/start")
    def step_start():
        session = current()
        body = payload()
        beta = views.BETAS[choice(body, "beta", tuple(views.BETAS), "kl")]
        init = choice(body, "init", views.INITS, "nndsvda")
        with session.lock:
            k = whole(body, "k", 1, session.k_max(), 3)
            session.step = views.step_start(session.analysed(), k, beta, init)
            return jsonify(with_axes(session, views.step_view(session.analysed(), session.step)))

    @app.post("/api/step")
    def step():
        session = current()
        updates = whole(payload(), "updates", 1, views.STEP_MAX, 1)
        with session.lock:
            if session.step is None:
                raise NmfsepError("nothing to step yet: press Start (a new excerpt starts over)")
            session.step = views.step_run(session.analysed(), session.step, updates)
            return jsonify(with_axes(session, views.step_view(session.analysed(), session.step)))

    @app.post("/api/pca")
    def pca():
        session = current()
        body = payload()
        with session.lock:
            k = whole(body, "k", 1, session.k_max())
            W, H = session.rank_sweep().factors[k]
            return jsonify(with_axes(session, views.pca_view(session.analysed(), W, H)))

    @app.post("/api/kmeans")
    def kmeans():
        session = current()
        body = payload()
        with session.lock:
            k = whole(body, "k", 1, session.k_max())
            return jsonify(with_axes(session, views.kmeans_view(session.analysed(), k)))

    @app.post("/api/deep")
    def deep():
        session = current()
        body = payload()
        beta = views.BETAS[choice(body, "beta", tuple(views.BETAS), "kl")]
        with session.lock:
            k1 = whole(body, "k1", 2, session.k_max())
            k2 = whole(body, "k2", 1, k1 - 1)
            return jsonify(with_axes(session, views.deep_view(session.analysed(), k1, k2, beta)))

    @app.post("/api/separate")
    def separate():
        session = current()
        body = payload()
        n_sources = whole(body, "n_sources", 2, 4, 2)
        with session.lock:
            default = "none" if session.excerpt.sources else "auto"
            grouping = choice(body, "grouping", views.GROUPINGS, default)
            return jsonify(with_axes(session, views.separate_view(session.excerpt, session.analysed(),
                                                                  n_sources, grouping)))

    @app.before_request
    def addressed_to_this_machine():
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if loopback_only and not is_loopback(host):
            return jsonify(error=f"this page answers only to localhost and 127.0.0.1, not to {request.host} "
                                 "(a page of another site cannot use it)"), 403
        return None

    @app.errorhandler(NmfsepError)
    def user_error(exc):
        return jsonify(error=str(exc)), 410 if isinstance(exc, Expired) else 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return jsonify(error=f"the upload is larger than {max_upload_mb:g} MB, the most this page takes: "
                             f"cut an excerpt first (ffmpeg -ss START -t {views.MAX_EXCERPT:g} -i IN "
                             f"excerpt.wav) or run nmfsep explore FILE"), 413

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return jsonify(error=f"{exc.code} {exc.name}: {exc.description}"), exc.code

    @app.errorhandler(Exception)
    def bug(exc):
        if stopping.is_set():           # cut short by the stop (its worker pools shut down): quietly
            return jsonify(error="the nmfsep explore server is stopping"), 503
        app.logger.exception("explore: %s %s failed", request.method, request.path)
        return jsonify(error=f"internal error ({type(exc).__name__}): {exc}; please report it"), 500

    return app


def stop(app: Flask) -> None:
    """Mark app as stopping (the CLI calls it on Ctrl-C or SIGTERM, before Python exits): a
    request that fails from then on (Python's exit shuts the solvers' worker pools down under
    it) answers 503 without logging a traceback."""
    app.extensions["nmfsep_explore"]["stopping"].set()


# --- request bodies -----------------------------------------------------------------------------

def payload() -> dict:
    """The request's JSON object ({} for an empty body); NmfsepError for anything else."""
    if not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise NmfsepError("the request body must be a JSON object")
    return body


def whole(body: dict, name: str, low: int, high: int, default: int | None = None) -> int:
    """body[name] as a whole number in [low, high]; NmfsepError naming the range otherwise."""
    value = body.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise NmfsepError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise NmfsepError(f"{name} = {value} is out of range: choose {low} to {high}")
    return value


def number(body: dict, name: str, low: float, high: float, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise NmfsepError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def tones(body: dict, name: str, count: int, word: str, low: float, high: float,
          unit: str) -> list[float] | None:
    """body[name], one number in [low, high] per playground tone (None if absent); NmfsepError
    in the page's words ("tone 2 pitch: 5000 Hz is outside 40-2000 Hz") otherwise."""
    values = body.get(name)
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != count:
        raise NmfsepError(f"{name} must list {count} numbers, one per tone, got {values!r}")
    for i, value in enumerate(values, 1):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise NmfsepError(f"tone {i} {word} must be {low:g}-{high:g} {unit}, got {value!r}")
        if not low <= value <= high:
            raise NmfsepError(f"tone {i} {word}: {value:g} {unit} is outside {low:g}-{high:g} {unit}")
    return [float(v) for v in values]


def choice(body: dict, name: str, options: tuple, default: str) -> str:
    value = body.get(name, default)
    if value not in options:
        raise NmfsepError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


# --- serving ------------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 0):
    """A threaded werkzeug WSGI server for app on host:port (0: any free port), listening, not
    yet serving (call ``serve_forever``; ``server.port`` is the real port). It logs no request
    lines. NmfsepError, one line, where host:port cannot be listened on: naming the host where it
    is no address of this machine, the port otherwise (a port in use)."""
    from werkzeug.serving import WSGIRequestHandler, make_server as werkzeug_server, select_address_family

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    def not_here(exc: Exception) -> NmfsepError:
        return NmfsepError(f"{host}: not an address of this machine ({getattr(exc, 'strerror', None) or exc}); "
                           f"choose another host with --host (127.0.0.1: this machine only)")

    family = select_address_family(host, port)
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
    except (OSError, UnicodeError) as exc:
        raise not_here(exc) from None
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(64)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise not_here(exc) from None
        raise NmfsepError(f"{host}:{port}: cannot listen there ({exc.strerror or exc}); choose another "
                          f"port with --port (0: any free port)") from None
    try:
        return werkzeug_server(host, port, app, threaded=True, request_handler=QuietHandler,
                               fd=listener.fileno())
    finally:
        listener.close()          # the server holds its own duplicate of the socket

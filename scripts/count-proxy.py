"""A counting proxy in front of moto for scripts/bench-deploy.sh: forwards every request to
UPSTREAM unchanged and counts AWS actions (query protocol: the Action form field). GET /counts
returns the counts as JSON; POST /reset clears them. 127.0.0.1 only."""
import json, sys, threading, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = sys.argv[2]
COUNTS = {}
LOCK = threading.Lock()


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _reply(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/counts":
            with LOCK:
                return self._reply(200, json.dumps(COUNTS).encode())
        if self.path == "/reset":
            with LOCK:
                COUNTS.clear()
            return self._reply(200, b"{}")
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        with LOCK:
            COUNTS[action] = COUNTS.get(action, 0) + 1
        req = urllib.request.Request(UPSTREAM + self.path, data=body or None, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req) as r:
                self._reply(r.status, r.read(), [(k, v) for k, v in r.headers.items() if k.lower() in ("content-type", "x-amzn-requestid")])
        except urllib.error.HTTPError as e:
            self._reply(e.code, e.read(), [(k, v) for k, v in e.headers.items() if k.lower() == "content-type"])

    do_GET = do_POST = do_PUT = do_DELETE = _forward


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

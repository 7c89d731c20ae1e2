"""A counting proxy in front of moto for scripts/bench-*.sh: forwards every request to UPSTREAM
and counts AWS actions (query protocol: the Action form field; JSON protocol: X-Amz-Target).
127.0.0.1 only.

  GET  /counts   the counts as JSON          POST /reset  clears counts, log and boot state
  GET  /log      every call: [t, action, detail] (t in seconds on this proxy's clock; detail:
                 the tag keys a CreateOrUpdateTags/DeleteTags writes, a Describe's MaxResults)
  GET  /ready    instance id -> the time it turned InService in the answers (see /arm)
  GET  /now      this proxy's clock now (to time a command from its start)
  GET  /tagged   every CreateOrUpdateTags/DeleteTags: [t, action, [the groups it names]]
  POST /arm      {"boot": SECS, "known": [ids]}: from now on an instance that is not in
                 `known` answers Pending in DescribeAutoScalingGroups until SECS after the
                 capacity call (UpdateAutoScalingGroup, SetDesiredCapacity,
                 TerminateInstanceInAutoScalingGroup) that preceded its first appearance (moto starts instances InService at
                 once; this gives them a boot, so a waiting client has something to react to).
"""
import json, os, re, sys, threading, time, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = sys.argv[2]
LOCK = threading.Lock()
START = time.monotonic()
COUNTS, LOG, TAGGED = {}, [], []
BOOT = {"secs": 0.0, "known": set(), "launched": {}, "last_write": 0.0}
# GEARS_PROXY_HOLD="Action=SECS,...": these actions are held that long before they go on (a
# slow AWS: tests use it to reach a moment moto passes in milliseconds, e.g. packer's cleanup).
HOLD = {a: float(s) for a, s in (kv.split("=") for kv in os.environ.get("GEARS_PROXY_HOLD", "").split(",") if "=" in kv)}
# GEARS_PROXY_DENY="Action,...": these actions are answered 403 AccessDenied (query protocol's
# ErrorResponse) without reaching moto: a role whose trust policy refuses, a missing permission.
DENY = {a for a in os.environ.get("GEARS_PROXY_DENY", "").split(",") if a}
# The calls after which Auto Scaling launches instances.
LAUNCHING = ("UpdateAutoScalingGroup", "SetDesiredCapacity", "TerminateInstanceInAutoScalingGroup")
MEMBER = re.compile(r"<member>((?:(?!<member>|</member>).)*)</member>", re.S)


def now():
    return time.monotonic() - START


def tag_keys(form):
    return sorted(v[0] for k, v in form.items() if re.fullmatch(r"Tags\.member\.\d+\.Key", k))


def booted(xml):
    """DescribeAutoScalingGroups' answer with instances still booting shown Pending."""
    t = now()

    def member(m):
        body = m.group(1)
        iid = re.search(r"<InstanceId>(i-[0-9a-f]+)</InstanceId>", body)
        if not iid or "<LifecycleState>" not in body:
            return m.group(0)
        iid = iid.group(1)
        if iid in BOOT["known"]:
            return m.group(0)
        launched = BOOT["launched"].setdefault(iid, BOOT["last_write"])
        if t < launched + BOOT["secs"]:
            body = body.replace("<LifecycleState>InService</LifecycleState>", "<LifecycleState>Pending</LifecycleState>")
        return "<member>" + body + "</member>"

    return MEMBER.sub(member, xml)


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

    def _control(self, body):
        with LOCK:
            if self.path == "/counts":
                return self._reply(200, json.dumps(COUNTS).encode())
            if self.path == "/log":
                return self._reply(200, json.dumps(LOG).encode())
            if self.path == "/now":
                return self._reply(200, json.dumps(now()).encode())
            if self.path == "/tagged":
                return self._reply(200, json.dumps(TAGGED).encode())
            if self.path == "/ready":
                ready = {i: t + BOOT["secs"] for i, t in BOOT["launched"].items()}
                return self._reply(200, json.dumps(ready).encode())
            if self.path == "/reset":
                COUNTS.clear()
                LOG.clear()
                TAGGED.clear()
                BOOT.update(secs=0.0, known=set(), launched={}, last_write=now())
                return self._reply(200, b"{}")
            if self.path == "/arm":
                a = json.loads(body or b"{}")
                BOOT.update(secs=float(a.get("boot", 0)), known=set(a.get("known", [])), launched={}, last_write=now())
                return self._reply(200, b"{}")
        return None

    def _forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path in ("/counts", "/log", "/ready", "/reset", "/arm", "/now", "/tagged"):
            return self._control(body)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        target = self.headers.get("X-Amz-Target", "")
        action = form.get("Action", [target.rsplit(".", 1)[-1] or "?"])[0]
        if action in ("CreateOrUpdateTags", "DeleteTags"):
            detail = ",".join(tag_keys(form))
        elif action.startswith("Describe"):
            detail = "MaxResults=" + form["MaxResults"][0] if "MaxResults" in form else ""
        else:
            detail = ""
        if action in DENY:
            with LOCK:
                COUNTS[action] = COUNTS.get(action, 0) + 1
                LOG.append([round(now(), 4), "denied:" + action, ""])
            out = ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>"
                   "User is not authorized to perform: " + action + "</Message></Error>"
                   "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
            return self._reply(403, out.encode(), [("Content-Type", "text/xml")])
        if action in HOLD:
            with LOCK:
                LOG.append([round(now(), 4), "held:" + action, ""])
            time.sleep(HOLD[action])
        req = urllib.request.Request(UPSTREAM + self.path, data=body or None, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection", "accept-encoding"):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req) as r:
                code, out, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            code, out, hdrs = e.code, e.read(), e.headers
        with LOCK:
            t = now()
            COUNTS[action] = COUNTS.get(action, 0) + 1
            LOG.append([round(t, 4), action, detail])
            if action in ("CreateOrUpdateTags", "DeleteTags"):
                ids = sorted({v[0] for k, v in form.items() if re.fullmatch(r"Tags\.member\.\d+\.ResourceId", k)})
                TAGGED.append([round(t, 4), action, ids])
            if action in LAUNCHING:
                BOOT["last_write"] = t
            if action == "DescribeAutoScalingGroups" and BOOT["secs"] > 0 and code == 200:
                out = booted(out.decode()).encode()
        keep = ("content-type", "x-amzn-requestid")
        self._reply(code, out, [(k, v) for k, v in hdrs.items() if k.lower() in keep])

    do_GET = do_POST = do_PUT = do_DELETE = _forward


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

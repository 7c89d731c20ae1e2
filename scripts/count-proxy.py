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

Where moto differs from AWS, on request (environment):
  GEARS_PROXY_SHARED_IMAGES=1   DescribeImages in an account an AMI is shared with shows it, as
                 AWS does (moto answers it unknown there): an asked id the caller's account does not
                 see is looked up as its owner (the proxy's caller with non-assumed credentials),
                 and given if its launch permissions name the caller's account, without the
                 owner's tags.
  GEARS_PROXY_STS_EXPIRY=SECS   AssumeRole's credentials expire SECS from now (moto: 12 hours),
                 so a client that outlives them must renew them.
"""
import datetime, json, os, re, sys, threading, time, urllib.parse, urllib.request
import xml.etree.ElementTree as ET
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
# GEARS_PROXY_THROTTLE="Action,...": these actions are answered 400 Throttling ("Rate exceeded"),
# every time, without reaching moto: AWS throttling past any client's retries.
THROTTLE = {a for a in os.environ.get("GEARS_PROXY_THROTTLE", "").split(",") if a}
SHARED_IMAGES = os.environ.get("GEARS_PROXY_SHARED_IMAGES") == "1"
STS_EXPIRY = float(os.environ.get("GEARS_PROXY_STS_EXPIRY") or 0)
# Access key ids AssumeRole gave -> the account of the role; the last other key (the owner's).
ASSUMED, OWNER = {}, {"key": None}
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


def access_key(headers):
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    m = re.search(r"Credential=([^/,\s]+)/", auth)
    return m.group(1) if m else None


def asked_images(form):
    """The AMI ids a DescribeImages names (ImageId.N, or an image-id filter), if only those."""
    ids = [v[0] for k, v in form.items() if re.fullmatch(r"ImageId\.\d+", k)]
    for k, v in form.items():
        m = re.fullmatch(r"Filter\.(\d+)\.Name", k)
        if m and v[0] == "image-id":
            ids += [w[0] for kk, w in form.items() if kk.startswith(f"Filter.{m.group(1)}.Value.")]
        elif m:
            return []
    return ids


def send(path, method, headers, body):
    req = urllib.request.Request(UPSTREAM + path, data=body or None, method=method)
    for k, v in headers.items():
        if k.lower() not in ("host", "content-length", "connection", "accept-encoding"):
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def as_owner(headers, form):
    """`form` sent as the owner's credentials (moto reads the account from the key id)."""
    h = {}
    for k, v in headers.items():
        if k.lower() == "authorization":
            v = v.replace(access_key(headers), OWNER["key"], 1)
        if k.lower() != "x-amz-security-token":
            h[k] = v
    return send("/", "POST", h, urllib.parse.urlencode(form).encode())


def shared_images(code, out, headers, form):
    """AWS's answer to a DescribeImages in an account the asked AMIs are shared with."""
    account = ASSUMED.get(access_key(headers))
    ids = asked_images(form)
    if not account or not OWNER["key"] or not ids:
        return code, out
    seen = set(re.findall(r"<imageId>(ami-[0-9a-f]+)</imageId>", out.decode())) if code == 200 else set()
    missing = [i for i in ids if i not in seen]
    if not missing:
        return code, out
    ask = {"Action": "DescribeImages", "Version": form.get("Version", ["2016-11-15"])[0]}
    ask.update({f"ImageId.{n + 1}": i for n, i in enumerate(missing)})
    ocode, oout, _ = as_owner(headers, ask)
    if ocode != 200:
        return code, out
    theirs = ET.fromstring(oout)
    ns = theirs.tag[: theirs.tag.index("}") + 1] if theirs.tag.startswith("{") else ""
    ET.register_namespace("", ns[1:-1])
    items = theirs.find(f"{ns}imagesSet")
    shared = []
    for item in list(items):
        iid = item.findtext(f"{ns}imageId")
        acode, aout, _ = as_owner(headers, {"Action": "DescribeImageAttribute", "Version": ask["Version"], "ImageId": iid, "Attribute": "launchPermission"})
        if acode == 200 and f"<userId>{account}</userId>" in aout.decode():
            for t in item.findall(f"{ns}tagSet"):
                item.remove(t)
            shared.append(item)
    if not shared:
        return code, out
    if code == 200:
        answer = ET.fromstring(out)
        into = answer.find(f"{ns}imagesSet")
    else:
        answer, into = theirs, items
        for item in list(items):
            items.remove(item)
    into.extend(shared)
    return 200, ET.tostring(answer, encoding="utf-8", xml_declaration=False)


def sts_answer(out, form):
    """Notes the keys AssumeRole gives (their account: the role's), and shortens their life."""
    text = out.decode()
    m = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", text)
    acct = re.match(r"arn:aws:iam::(\d{12}):", form.get("RoleArn", [""])[0])
    if m and acct:
        ASSUMED[m.group(1)] = acct.group(1)
    if STS_EXPIRY > 0:
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=STS_EXPIRY)
        text = re.sub(r"<Expiration>[^<]+</Expiration>", "<Expiration>" + until.strftime("%Y-%m-%dT%H:%M:%SZ") + "</Expiration>", text)
    return text.encode()


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
        elif action == "AssumeRole":
            detail = form.get("RoleArn", [""])[0]
        elif action.startswith("Describe"):
            detail = "MaxResults=" + form["MaxResults"][0] if "MaxResults" in form else ""
        else:
            detail = ""
        if action in DENY or action in THROTTLE:
            denied = action in DENY
            with LOCK:
                COUNTS[action] = COUNTS.get(action, 0) + 1
                LOG.append([round(now(), 4), ("denied:" if denied else "throttled:") + action, ""])
            code, text = (("AccessDenied", "User is not authorized to perform: " + action) if denied
                          else ("Throttling", "Rate exceeded"))
            out = ("<ErrorResponse><Error><Type>Sender</Type><Code>" + code + "</Code><Message>"
                   + text + "</Message></Error>"
                   "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
            return self._reply(403 if denied else 400, out.encode(), [("Content-Type", "text/xml")])
        if action in HOLD:
            with LOCK:
                LOG.append([round(now(), 4), "held:" + action, ""])
            time.sleep(HOLD[action])
        key = access_key(self.headers)
        if key and key not in ASSUMED and action != "AssumeRole":
            OWNER["key"] = key
        code, out, hdrs = send(self.path, self.command, self.headers, body)
        if action == "AssumeRole" and code == 200:
            out = sts_answer(out, form)
        if action == "DescribeImages" and SHARED_IMAGES:
            code, out = shared_images(code, out, self.headers, form)
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

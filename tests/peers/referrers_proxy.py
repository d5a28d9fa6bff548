"""A registry that keeps referrers, for the tests: a proxy in front of a
Docker registry 2.8 (which has no referrers API) that adds what the
distribution spec 1.1 asks of one that has it. A manifest PUT whose body
has a `subject` is answered with `OCI-Subject`, and its descriptor is kept;
`GET /v2/NAME/referrers/DIGEST` answers the image index of those kept for
DIGEST (filtered by `artifactType`). Everything else goes to the registry
as it is. Listens on 127.0.0.1, prints its port, serves until killed.

Usage: python3 referrers_proxy.py UPSTREAM_PORT
"""

import hashlib
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

UPSTREAM = ("127.0.0.1", int(sys.argv[1]))
KEPT = {}  # (name, subject digest) -> [descriptor]
LOCK = threading.Lock()
REFERRERS = re.compile(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$")
MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def forward(self, body, extra_headers=()):
        conn = http.client.HTTPConnection(*UPSTREAM)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        self.send_response(res.status)
        for k, v in res.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(k, v)
        for k, v in extra_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        m = REFERRERS.match(url.path)
        if m is None:
            return self.forward(b"")
        name, subject = m.groups()
        want = urllib.parse.parse_qs(url.query).get("artifactType")
        with LOCK:
            found = [d for d in KEPT.get((name, subject), []) if not want or d.get("artifactType") in want]
        data = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": found,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.forward(b"")

    def do_POST(self):
        self.forward(self.body())

    def do_PATCH(self):
        self.forward(self.body())

    def do_DELETE(self):
        self.forward(b"")

    def do_PUT(self):
        body = self.body()
        m = MANIFEST.match(urllib.parse.urlsplit(self.path).path)
        extra = []
        if m is not None:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = {}
            subject = (doc.get("subject") or {}).get("digest") if isinstance(doc, dict) else None
            if subject:
                desc = {
                    "mediaType": doc.get("mediaType", self.headers.get("Content-Type")),
                    "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                    "size": len(body),
                }
                kind = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
                if kind:
                    desc["artifactType"] = kind
                if doc.get("annotations"):
                    desc["annotations"] = doc["annotations"]
                with LOCK:
                    kept = KEPT.setdefault((m.group(1), subject), [])
                    if desc["digest"] not in [d["digest"] for d in kept]:
                        kept.append(desc)
                extra.append(("OCI-Subject", subject))
        self.forward(body, extra)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(server.server_address[1], flush=True)
server.serve_forever()

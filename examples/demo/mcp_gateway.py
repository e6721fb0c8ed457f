#!/usr/bin/env python3
"""A stand-in MCP gateway: an HTTP service with a /health route (python3 only)."""
import http.server
import os
import sys

PORT = int(os.environ.get("PORT", "3002"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"ok"}\n' if self.path == "/health" else b'{"tools":["search","fetch"]}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


print(f"listening on {PORT}", flush=True)
try:
    http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
except KeyboardInterrupt:
    sys.exit(0)

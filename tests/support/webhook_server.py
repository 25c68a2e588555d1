"""A tiny HTTP server for the webhook test: each POST body is written to OUT/<n>.json."""
import http.server
import os
import sys

port, out = int(sys.argv[1]), sys.argv[2]
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(os.path.join(out, f"{count:04d}.json"), "wb") as f:
            f.write(body)
        with open(os.path.join(out, f"{count:04d}.path"), "w") as f:
            f.write(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print("READY", flush=True)
server.serve_forever()

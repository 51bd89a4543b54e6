#!/usr/bin/python3
"""A network power switch for the power driver tests: Shelly Gen2 RPC and Tasmota on one port.

Usage: fake-switch.py DIR. Listens on 127.0.0.1 on a free port, writes the port to DIR/port and
every request path (one a line) to DIR/requests. GET /_mode?m=ok|500|hang sets how the switch
answers from then on (hang: never, until the test ends); control requests are not recorded.
"""
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
state = {"mode": "ok", "shelly": [False, False], "tasmota": [False, False, False]}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/_mode":
            with lock:
                state["mode"] = q["m"][0]
            return self.reply(200, "{}")
        with lock:
            with open(DIR + "/requests", "a") as f:
                f.write(self.path + "\n")
            mode = state["mode"]
        if mode == "hang":
            time.sleep(3600)
            return
        if mode == "500":
            return self.reply(500, '{"error":"relay fault"}')
        if self.headers.get("Authorization") and self.headers["Authorization"] != "Basic YWRtaW46c2VjcmV0":
            return self.reply(401, "{}")
        with lock:
            if url.path == "/rpc/Switch.Set":
                i = int(q["id"][0])
                was = state["shelly"][i]
                state["shelly"][i] = q["on"][0] == "true"
                return self.reply(200, json.dumps({"was_on": was}))
            if url.path == "/rpc/Switch.GetStatus":
                i = int(q["id"][0])
                on = state["shelly"][i]
                return self.reply(200, json.dumps({"id": i, "source": "http", "output": on,
                                                   "apower": 12.5 if on else 0, "voltage": 231.2}))
            if url.path == "/cm":
                words = q["cmnd"][0].split(" ")
                if words[0] == "Status" and words[1:] == ["8"]:
                    return self.reply(200, json.dumps({"StatusSNS": {"Time": "2026-11-29T10:00:00",
                                                                     "ENERGY": {"Power": 40, "Voltage": 230}}}))
                if words[0].startswith("Power"):
                    i = int(words[0][5:] or "1")
                    if len(words) > 1:
                        state["tasmota"][i] = words[1].lower() == "on"
                    key = "POWER" if i == 1 else "POWER%d" % i
                    return self.reply(200, json.dumps({key: "ON" if state["tasmota"][i] else "OFF"}))
                return self.reply(200, '{"Command":"Unknown"}')
        return self.reply(404, "{}")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(DIR + "/port.tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(DIR + "/port.tmp", DIR + "/port")
server.serve_forever()

"""A stand-in W&B server on localhost: the GraphQL queries and the FileStream that `wandb sync`
uses, keeping each run's history the way the W&B backend does (rows by line offset; the resume
status a resumed upload asks for), so that a test sees what a sync would upload."""
from __future__ import annotations

import gzip
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Runs(dict):
    """run id -> {"history": rows, "summary": dict, "config": JSON text or None}"""

    def of(self, run_id: str) -> dict:
        return self.setdefault(run_id, {"history": [], "summary": {}, "config": None})


class StandIn(BaseHTTPRequestHandler):
    runs: Runs
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_PUT(self):  # file uploads
        self.body()
        self.reply({})

    def do_POST(self):
        body = self.body()
        with self.lock:
            if self.path.startswith("/graphql"):
                request = json.loads(body)
                return self.reply({"data": self.graphql(request.get("operationName"), request.get("variables") or {})})
            stream = re.match(r"/files/[^/]+/[^/]+/([^/]+)/file_stream", self.path)
            if stream:
                self.file_stream(self.runs.of(stream.group(1)), json.loads(body).get("files", {}))
                return self.reply({"exitcode": None, "limits": {}})
        self.reply({})

    def body(self) -> bytes:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        return gzip.decompress(data) if self.headers.get("Content-Encoding") == "gzip" else data

    def reply(self, answer: dict) -> None:
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    @staticmethod
    def file_stream(run: dict, files: dict) -> None:
        if "wandb-history.jsonl" in files:
            chunk = files["wandb-history.jsonl"]
            rows = [json.loads(line) for line in chunk["content"]]
            run["history"][chunk["offset"] : chunk["offset"] + len(rows)] = rows
        if "wandb-summary.json" in files:
            run["summary"] = json.loads(files["wandb-summary.json"]["content"][-1])

    def graphql(self, operation: str, v: dict) -> dict:
        project = {"id": "p", "name": v.get("project") or "wgan", "entity": {"id": "e", "name": "me"}}
        if operation == "Viewer":
            return {"viewer": {"id": "u", "entity": "me", "username": "me", "email": "me@localhost", "flags": "{}",
                               "teams": {"edges": []}}}
        if operation == "ServerFeaturesQuery":
            return {"serverInfo": {"features": []}}
        if operation == "RunResumeStatus":
            run = self.runs.get(v["name"])
            if run is None or run["config"] is None:
                return {"model": {**project, "bucket": None}}
            history = run["history"]
            return {"model": {**project, "bucket": {
                "id": v["name"], "name": v["name"], "summaryMetrics": json.dumps(run["summary"]), "displayName": None,
                "logLineCount": 0, "historyLineCount": len(history), "eventsLineCount": 0,
                "historyTail": json.dumps([json.dumps(row) for row in history[-10:]]), "eventsTail": "[]",
                "config": run["config"], "tags": [], "notes": None, "wandbConfig": json.dumps({"t": {}})}}}
        if operation == "UpsertBucket":
            run = self.runs.of(v["name"])
            run["config"] = v.get("config") or run["config"]
            return {"upsertBucket": {"inserted": True, "bucket": {
                "id": v["name"], "name": v["name"], "displayName": v.get("displayName"), "description": None,
                "config": run["config"] or "{}", "sweepName": None, "historyLineCount": len(run["history"]),
                "project": project}}}
        if operation == "CreateRunFiles":
            host = f"http://{self.headers['Host']}"
            return {"createRunFiles": {"runID": v["run"], "uploadHeaders": [],
                                       "files": [{"name": f, "uploadUrl": f"{host}/upload/{f}"} for f in v["files"]]}}
        return {}


def serve() -> tuple[str, Runs, ThreadingHTTPServer]:
    """Start a stand-in on a free port: (its URL, the runs it holds, the server to shut down)."""
    runs = Runs()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (StandIn,), {"runs": runs}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", runs, server

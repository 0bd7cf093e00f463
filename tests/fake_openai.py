"""``FakeOpenAIServer``: a scripted fake of an OpenAI-compatible endpoint on loopback, for unit tests
of parsing and error handling only (it is not a model).

A test queues the HTTP answers it wants (429, 500, a slow answer, a malformed body, an id outside
the candidates, a short list of vectors, a dropped connection) or sets a default reply, and then
checks what the client did with them. A reply body is a dict (sent as JSON), a str (sent as is, so
it can be broken JSON), :data:`DROP` (the connection is closed with no answer), or a function of
the request body returning one of those or a ``(status, body)`` pair.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROP = object()  # close the connection without sending any answer


def chat_body(content, prompt_tokens=10, completion_tokens=5):
    return {
        "id": "fake", "object": "chat.completion", "created": 0, "model": "fake-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error_body(message, kind="server_error"):
    return {"error": {"message": message, "type": kind, "code": None}}


class FakeOpenAIServer:
    """A fake OpenAI endpoint that replays queued replies, then ``default`` (a valid chat answer)."""

    def __init__(self):
        self.replies = []  # (status, body, headers, delay_s)
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.default = (200, chat_body('{"ids": ["B2"]}'), {}, 0.0)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "authorization": self.headers.get("Authorization")})
                    status, reply, headers, delay = fake.replies.pop(0) if fake.replies else fake.default
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    time.sleep(delay)
                    if callable(reply):
                        reply = reply(body)
                    if isinstance(reply, tuple):
                        status, reply = reply
                    if reply is DROP:
                        self.close_connection = True
                        return
                    data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll interval: shutdown() waits for the next poll, which would add 0.5 s to every test.
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def queue(self, status, body, headers=None, delay=0.0):
        self.replies.append((status, body, headers or {}, delay))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

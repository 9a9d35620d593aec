#!/usr/bin/env python3
"""moto's S3 server, as `moto_server` runs it, with conditional writes made atomic.

moto checks a PUT's `If-None-Match` (or `If-Match`) and then stores the object in two
steps, so two concurrent PUTs of one key can both pass the check and both get 200. Lectern's
tests caught it: two LanceDB commits of the same table version both "succeeded" and one
document's rows were gone. S3 decides a conditional write atomically; here every conditional
write (a PUT, or the POST completing a multipart upload, with If-None-Match or If-Match)
runs under one lock, and all other requests run concurrently as before.

Usage (with the python that has moto[server]): s3_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class ConditionalWritesInTurn:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        conditional = "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ
        if conditional and environ.get("REQUEST_METHOD") in ("PUT", "POST"):
            with self.lock:
                # The whole response, check and store included, is made under the lock.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, ConditionalWritesInTurn(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

"""A real SMTP server for vigil's mail tests (aiosmtpd): STARTTLS, implicit TLS or plain, AUTH.

Every accepted message is written to OUT/<n>.eml with its envelope in OUT/<n>.json; every AUTH
attempt (user name only) is appended to OUT/auth.log. Prints "READY" once listening. With
--stall, the server takes the message's data and never answers (OUT/stalled says it has begun):
a mail server that hangs in the middle of a transaction.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import time
import warnings

# aiosmtpd warns about its own deprecated attributes; the tests read stderr of vigil, not this.
warnings.filterwarnings("ignore")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out, mode, stall):
        self.out = out
        self.mode = mode
        self.stall = stall
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            open(os.path.join(self.out, "stalled"), "w").close()
            await asyncio.sleep(3600)
        self.n += 1
        base = os.path.join(self.out, f"{self.n:04d}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": session.ssl is not None or self.mode == "implicit",
                       "auth": session.authenticated}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["starttls", "implicit", "plain"], required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out", required=True)
    p.add_argument("--stall", action="store_true")
    a = p.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = False
        user = ""
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode(errors="replace")
            ok = (a.user is not None and user == a.user
                  and auth_data.password.decode(errors="replace") == a.password)
        with open(os.path.join(a.out, "auth.log"), "a") as f:
            tls = session.ssl is not None or a.mode == "implicit"
            f.write(f"{mechanism} {user} {'ok' if ok else 'fail'} tls={tls}\n")
        # handled=False: aiosmtpd itself answers 535 on failure.
        return AuthResult(success=ok, handled=False)

    kwargs = dict(hostname="127.0.0.1", port=a.port, authenticator=authenticator)
    if a.mode in ("starttls", "implicit"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.mode == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True,
                          auth_required=a.user is not None)
        else:
            # The whole connection is TLS; aiosmtpd's session does not see it, so AUTH is
            # allowed without its STARTTLS check.
            kwargs.update(ssl_context=ctx, auth_require_tls=False, auth_required=a.user is not None)
    else:
        # Plain: no STARTTLS offered; AUTH is accepted in the clear so that a client that
        # wrongly sends credentials is caught in auth.log.
        kwargs.update(auth_require_tls=False, auth_required=False)
    controller = Controller(Handler(a.out, a.mode, a.stall), **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads every key and value in a Redis and looks for TLS secrets in them.

usage: redis_scan.py HOST PORT USER PASSWORD KEYLOG... [--min-keys N]

KEYLOG files are NSS key log files (SSLKEYLOGFILE from curl, -keylogfile
from openssl s_client). For every secret in them this looks for the
secret itself and for what RFC 8446 §7.3 derives from it (write key for
AES-128/256-GCM and ChaCha20-Poly1305, IV, next traffic secret), with
SHA-256 and SHA-384, in every key and value the Redis holds. Exit status
0 if none is found and at least N keys were read; prints what it saw.

Speaks RESP over a plain socket: no client library needed, nothing of
baton's code is used (an independent check).
"""
import hashlib
import hmac
import socket
import sys


def resp_cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)

    def cmd(self, *args):
        self.s.sendall(resp_cmd(*args))
        return self.read()


def expand_label(hash_name, secret, label, length):
    """HKDF-Expand-Label (RFC 8446 §7.1) with an empty context."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hash_name).digest()
        out += t
        i += 1
    return out[:length]


def needles(secret):
    yield "secret", secret
    for h in ("sha256", "sha384"):
        for n in (16, 32):
            yield "key(%s,%d)" % (h, n), expand_label(h, secret, b"key", n)
        yield "iv(%s)" % h, expand_label(h, secret, b"iv", 12)
        yield "next secret(%s)" % h, expand_label(h, secret, b"traffic upd", hashlib.new(h).digest_size)


def main():
    args = sys.argv[1:]
    min_keys = 0
    if "--min-keys" in args:
        i = args.index("--min-keys")
        min_keys = int(args[i + 1])
        del args[i:i + 2]
    host, port, user, password, *logs = args
    secrets = []
    for path in logs:
        try:
            for line in open(path):
                parts = line.split()
                if len(parts) == 3 and not line.startswith("#"):
                    secrets.append((parts[0], bytes.fromhex(parts[2])))
        except FileNotFoundError:
            pass
    c = Conn(host, int(port))
    c.cmd("AUTH", user, password)
    keys, cursor = [], b"0"
    while True:
        cursor, batch = c.cmd("SCAN", cursor, "COUNT", "1000")
        keys += batch
        if cursor == b"0":
            break
    values = [(k, c.cmd("GET", k) or b"") for k in keys]
    found = []
    for label, sec in secrets:
        for what, n in needles(sec):
            for k, v in values:
                if n in v or n in k:
                    found.append("%s %s in %r" % (label, what, k))
    print("redis_scan: %d keys, %d bytes of values, %d secrets from the key logs, %d found"
          % (len(keys), sum(len(v) for _, v in values), len(secrets), len(found)))
    for f in found[:20]:
        print("FOUND", f)
    if not secrets:
        print("redis_scan: no secrets in the key logs: nothing was checked")
        return 1
    if len(keys) < min_keys:
        print("redis_scan: expected at least %d keys" % min_keys)
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

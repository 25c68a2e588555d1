"""A Vault audit device for vigil's service tests: a separate process that appends request and
response lines to DIR/audit.log at about RATE lines a second for SECS seconds, and rotates the
file halfway the way logrotate and Vault do (rename, a little more written to the renamed file,
then a new file). Writes go through an 8 KiB buffer, so a line can reach the file in two writes
and the reader sees it cut in the middle for a moment.

The line shapes come from the test (--request, --response, with {id} and {time} in them); the
request ids written are listed, one a line, in IDS at the end.
"""
import argparse
import datetime
import os
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--rate", type=int, required=True)
    p.add_argument("--secs", type=float, required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--request", required=True)
    p.add_argument("--response", required=True)
    p.add_argument("--ids", required=True)
    a = p.parse_args()

    path = os.path.join(a.dir, "audit.log")
    out = open(path, "a", buffering=8192)
    pairs = max(a.rate // 40, 1)  # a batch every 50 ms
    ids = []
    start = time.monotonic()
    batches = 0
    rotated = False
    old = None
    while time.monotonic() - start < a.secs:
        if not rotated and time.monotonic() - start >= a.secs / 2:
            os.rename(path, path + ".1")
            old, out = out, None
            rotated = True
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        f = old if old is not None else out
        for _ in range(pairs):
            n = len(ids) + 1
            rid = f"{a.tag}-{n:07d}"
            f.write(a.request.replace("{id}", rid).replace("{time}", now) + "\n")
            f.write(a.response.replace("{id}", rid).replace("{time}", now) + "\n")
            ids.append(rid)
        f.flush()
        if old is not None:
            # One batch after the rename still goes to the renamed file, as a writer that has
            # not reopened yet does.
            old.close()
            old = None
            out = open(path, "a", buffering=8192)
        batches += 1
        due = start + batches * 0.05
        time.sleep(max(0.0, due - time.monotonic()))
    out.close()
    assert rotated, "the run was too short to rotate"
    with open(a.ids, "w") as f:
        f.write("\n".join(ids) + "\n")


if __name__ == "__main__":
    main()

"""Prints a delivered message (and its envelope, from the .json beside it) as JSON, parsed with
Python's email package: headers, and every leaf part decoded."""
import email
import email.policy
import json
import sys

path = sys.argv[1]
with open(path, "rb") as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)
with open(path[: -len(".eml")] + ".json") as f:
    envelope = json.load(f)
parts = []
for part in msg.walk():
    if part.is_multipart():
        continue
    payload = part.get_payload(decode=True) or b""
    parts.append({
        "content_type": part.get_content_type(),
        "filename": part.get_filename(),
        "text": payload.decode("utf-8", errors="replace"),
    })
print(json.dumps({
    "from": str(msg["From"]),
    "to": str(msg["To"]),
    "subject": str(msg["Subject"]),
    "message_id": str(msg["Message-ID"]),
    "headers": [k for k in msg.keys()],
    "parts": parts,
    "envelope": envelope,
}))

"""EAS: ``/api/predict/<service>``. Token or HMAC-SHA1 signed auth (as the official SDK signs),
the TF processor's protobuf ``PredictRequest``/``PredictResponse``, and a JSON form of the same
(``{"signature_name", "inputs": {name: nested list}, "output_filter"}`` -> ``{"outputs": ...}``;
bytes as ``{"b64": ...}``)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time

import numpy as np

from pai_lab.errors import BadInput
from pai_lab.serving.protocols import dumps, eas_pb, loads, numeric_json
from pai_lab.serving.protocols.tfserving import decode_b64, may_hold_b64

SIGNATURE_WINDOW = 15 * 60  # seconds a signed request's Date may differ from now, as cloud signatures allow


def refusal(
    token: str | None, header: str, method: str, path: str, headers, body: bytes, now: float | None = None
) -> str | None:
    """Why the request is not authorized, or None when it is.

    Plain ``Authorization: <token>`` or ``Authorization: EAS <base64 HMAC-SHA1>``. The signed string is
    ``POST\\n<Content-MD5>\\n<Content-Type>\\n<Date>\\n/api/predict/<name>``, keyed by the token;
    Content-MD5 must match the body and Date (an HTTP date) be within 15 minutes of now, so a
    captured request cannot be replayed later."""
    if not token:
        return None
    if not header:
        return "missing token"
    if hmac.compare_digest(header.encode(), token.encode()):
        return None
    if not header.startswith("EAS "):
        return "wrong token"
    md5 = headers.get("Content-MD5", "")
    if md5 != hashlib.md5(body).hexdigest():
        return "Content-MD5 does not match the body"
    date = headers.get("Date", "")
    text = f"{method}\n{md5}\n{headers.get('Content-Type', '')}\n{date}\n{path}".strip()
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), header[4:].strip()):
        return "wrong signature"
    try:
        signed_at = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return "a signed request needs a Date header (e.g. 'Mon, 07 Dec 2026 10:00:00 GMT')"
    if abs((time.time() if now is None else now) - signed_at) > SIGNATURE_WINDOW:
        return "the signed Date is more than 15 minutes from the server's clock"
    return None


def authorized(token: str | None, header: str, method: str, path: str, headers, body: bytes) -> bool:
    return refusal(token, header, method, path, headers, body) is None


def is_json(content_type: str, body: bytes) -> bool:
    return "json" in (content_type or "") or body[:1] in (b"{", b"[")


def parse_json(body: bytes) -> tuple[str | None, dict, list[str] | None]:
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f'the body is not valid JSON ({exc}); send {{"inputs": {{name: values}}}}', "body") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        raise BadInput(
            'send {"inputs": {"<input name>": [[...]]}, "signature_name"?: ..., "output_filter"?: '
            "[...]} or a protobuf PredictRequest",
            "inputs",
        )
    inputs = {}
    has_b64 = may_hold_b64(body)  # walking big numeric lists for b64 objects would cost more than parsing
    for name, value in data["inputs"].items():
        if isinstance(value, dict) and "values" in value:  # {"shape", "dtype", "values"}
            arr = np.asarray(value["values"])
            if value.get("shape") is not None:
                arr = arr.reshape(value["shape"])
            inputs[name] = arr
        else:
            inputs[name] = decode_b64(value) if has_b64 else value  # bytes travel as {"b64": ...}
    return data.get("signature_name"), inputs, data.get("output_filter") or None


def format_json(outputs: dict[str, np.ndarray]) -> bytes:
    return dumps({"outputs": {k: _jsonable(v) for k, v in outputs.items()}})


def parse_proto(body: bytes) -> tuple[str | None, dict, list[str] | None]:
    req = eas_pb.PredictRequest()
    try:
        req.ParseFromString(body)
        inputs = {name: eas_pb.array_to_numpy(arr) for name, arr in req.inputs.items()}
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise BadInput(f"the body is neither JSON nor a protobuf PredictRequest ({exc})", "body") from None
    if not inputs:
        raise BadInput("the PredictRequest has no inputs; add_feed() at least one", "inputs")
    return req.signature_name or None, inputs, list(req.output_filter) or None


def format_proto(outputs: dict[str, np.ndarray]) -> bytes:
    resp = eas_pb.PredictResponse()
    for name, arr in outputs.items():
        eas_pb.fill_array(resp.outputs[name], arr)
    return resp.SerializeToString()


def _jsonable(arr: np.ndarray):
    if arr.dtype.kind in "SO":
        return _text(arr.tolist())
    return numeric_json(arr)


def _text(value):
    """Nested lists of bytes and str (a string tensor) as JSON strings."""
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value.decode(errors="replace") if isinstance(value, bytes) else value

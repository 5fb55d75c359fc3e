"""Zeek parser: Zeek logs as JSON lines or as TSV with ``#`` header blocks.

The log type (``conn``, ``dns``, ``http``, ``modbus``, ``dnp3``, and the ICS
logs of CISA's ICSNPP parsers: ``modbus_detailed``, ``dnp3_control``,
``dnp3_objects``, ``s7comm``, ``s7comm_plus``, ``bacnet``, ``enip``, ``cip``)
comes from the record itself when it says so (the ``_path`` key of a JSON
line, the ``#path`` header of a TSV block), otherwise from the file name
(``conn.log``, ``conn.2026-11-20-00-00-00.log``, ``conn.log.labeled``,
``labeled-conn.log``).

TSV is stateful: the ``#separator``/``#fields``/``#types`` lines before a row
say how to read it, and a file may hold several header blocks.  Header lines
yield no event; the parser remembers the current block per record source.  A
collector that resumes in the middle of a file has not shown the parser the
header, so for a row from a file (``RawRecord.path`` and a byte offset) the
header block in force at that offset is read back from the file.

Every log gets the connection 4-tuple (``source.*``/``destination.*`` from
``id.orig_*``/``id.resp_*``: the side that opened the connection is the source,
also for responses), ``network.transport`` and ``labels.zeek_uid``; the types in
:data:`MAPPERS` get their own fields.  Other log types are kept with the common
fields and ``event.action`` = the log type.  TSV values are taken verbatim:
Zeek's ``\\xNN`` escapes are not decoded.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import json.scanner
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import PurePath
from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

#: Modbus function names as Zeek writes them (base/protocols/modbus/consts.zeek) -> function code
MODBUS_FUNCTION_CODES: dict[str, int] = {
    "READ_COILS": 0x01, "READ_DISCRETE_INPUTS": 0x02, "READ_HOLDING_REGISTERS": 0x03,
    "READ_INPUT_REGISTERS": 0x04, "WRITE_SINGLE_COIL": 0x05, "WRITE_SINGLE_REGISTER": 0x06,
    "READ_EXCEPTION_STATUS": 0x07, "DIAGNOSTICS": 0x08, "PROGRAM_484": 0x09, "POLL_484": 0x0A,
    "GET_COMM_EVENT_COUNTER": 0x0B, "GET_COMM_EVENT_LOG": 0x0C, "PROGRAM_584_984": 0x0D,
    "POLL_584_984": 0x0E, "WRITE_MULTIPLE_COILS": 0x0F, "WRITE_MULTIPLE_REGISTERS": 0x10,
    "REPORT_SLAVE_ID": 0x11, "PROGRAM_884_U84": 0x12, "RESET_COMM_LINK_884_U84": 0x13,
    "READ_FILE_RECORD": 0x14, "WRITE_FILE_RECORD": 0x15, "MASK_WRITE_REGISTER": 0x16,
    "READ_WRITE_MULTIPLE_REGISTERS": 0x17, "READ_FIFO_QUEUE": 0x18, "PROGRAM_CONCEPT": 0x28,
    "MULTIPLE_FUNCTION_CODES": 0x29, "ENCAP_INTERFACE_TRANSPORT": 0x2B, "PROGRAM_UNITY": 0x5A,
    "OBJECT_MESSAGING": 0x5B, "FIRMWARE_REPLACEMENT": 0x7D, "PROGRAM_584_984_2": 0x7E,
    "REPORT_LOCAL_ADDRESS": 0x7F,
}  # fmt: skip
#: conn_state values that mean the connection was established / refused or unanswered
CONN_ESTABLISHED: frozenset[str] = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})
CONN_FAILED: frozenset[str] = frozenset({"REJ", "S0", "RSTOS0"})
#: (local_orig, local_resp) -> network.direction
DIRECTIONS: dict[tuple[bool, bool], str] = {
    (True, True): "internal", (True, False): "outbound", (False, True): "inbound", (False, False): "external",
}
#: keys by which a JSON object is recognised as a Zeek log line
JSON_SIGNATURE: frozenset[str] = frozenset({"_path", "uid", "fuid", "id.orig_h"})

_CONTAINER = ("set[", "vector[", "table[")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_LOG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")  # NaN/Infinity: load_json_object gives the error


#: the scanner json.loads runs, with the numbers load_json_object(exact_numbers=True) gives (fractions as
#: Decimal, NaN/Infinity refused); see ZeekParser.parse for when its result stands in for load_json_object's
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)  # type: ignore[arg-type]  # a decoder is its context
)


def _json_line(data: str) -> dict[str, Any] | None:
    """The object on a line that is one JSON object from its first to its last character, else None.

    For such a line this is exactly ``load_json_object(line, exact_numbers=True)`` (nothing to strip, no
    text after the object) without its stripping and decoder layers.  None -- and the general path,
    which gives the errors -- for anything else: surrounding blanks, a line ending, broken JSON.
    """
    try:
        value, end = _SCAN_JSON(data, 0)
    except Exception:  # whatever it is (StopIteration, JSONDecodeError ...), load_json_object says it again
        return None
    return value if end == len(data) and type(value) is dict else None


@dataclass(frozen=True)
class Header:
    """One TSV header block."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def apply(self, line: str) -> Header:
        """The header after one ``#`` line; ``#separator`` starts a new block."""
        if line.startswith("#separator"):
            raw = line[len("#separator") :].strip()
            return Header(separator=_ESCAPE.sub(lambda m: chr(int(m[1], 16)), raw) or "\t")
        key, _, value = line[1:].partition(self.separator)
        if key == "set_separator":
            return dataclasses.replace(self, set_separator=value)
        if key == "empty_field":
            return dataclasses.replace(self, empty_field=value)
        if key == "unset_field":
            return dataclasses.replace(self, unset_field=value)
        if key == "path":
            return dataclasses.replace(self, path=value)
        if key == "fields":
            return dataclasses.replace(self, fields=tuple(value.split(self.separator)))
        if key == "types":
            return dataclasses.replace(self, types=tuple(value.split(self.separator)))
        return self  # #open, #close and comments carry nothing a row needs

    def row(self, line: str) -> dict[str, Any]:
        """One TSV row as typed values: ``-`` is None, ``(empty)`` an empty tuple."""
        values = line.split(self.separator)
        if len(values) != len(self.fields):
            raise BadRecord(f"{len(values)} columns, but the #fields header names {len(self.fields)}")
        types = self.types if len(self.types) == len(self.fields) else ("string",) * len(self.fields)
        columns = zip(self.fields, types, values, strict=True)
        return {name: self._convert(name, ztype, text) for name, ztype, text in columns}

    def _convert(self, name: str, ztype: str, text: str) -> Any:
        if text == self.unset_field:
            return None
        if ztype.startswith(_CONTAINER):
            if text == self.empty_field:
                return ()
            inner = ztype[ztype.index("[") + 1 : -1]
            return tuple(_scalar(name, inner, item) for item in text.split(self.set_separator))
        if text == self.empty_field:
            return None
        return _scalar(name, ztype, text)


def _scalar(name: str, ztype: str, text: str) -> Any:
    try:
        if ztype in ("time", "interval", "double"):
            number = Decimal(text)
            if not number.is_finite():
                raise ValueError(text)
            return number
        if ztype in ("count", "int", "port"):
            return int(text)
        if ztype == "bool":
            if text not in ("T", "F"):
                raise ValueError(text)
            return text == "T"
    except (ValueError, InvalidOperation):
        raise BadRecord(f"column {name!r}: {text!r} is not a Zeek {ztype}") from None
    return text


def logtype_from_name(name: str | None) -> str | None:
    """``conn`` for ``conn.log``, ``conn.04:00:00-05:00:00.log``, ``conn.log.labeled``, ``labeled-conn.log``."""
    if not name:
        return None
    stem = PurePath(name).name.split(".", 1)[0].rsplit("-", 1)[-1]
    return stem.lower() if _LOG_NAME.fullmatch(stem) else None


def scan_header(path: str, offset: int) -> Header | None:
    """The header block in force at byte ``offset`` of the file at ``path``, if the file still has it."""
    header: Header | None = None
    try:
        with open(path, "rb") as fh:
            position = 0
            for raw in fh:
                if position >= offset:
                    break
                position += len(raw)
                if raw.startswith(b"#"):
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    header = (header or Header()).apply(line)
    except OSError:
        return None
    return header if header is not None and header.fields else None


# typed access to a row (JSON values or converted TSV values) --------------------------
def _str(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRecord(f"key {key!r} must be a string, not {type(value).__name__}")


def _num(row: dict[str, Any], key: str) -> Decimal | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise BadRecord(f"key {key!r} must be a number, not {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadRecord(f"key {key!r}: {value!r} is not a number") from None
    if not number.is_finite():
        raise BadRecord(f"key {key!r}: {value!r} is not a number")
    return number


def _int(row: dict[str, Any], key: str) -> int | None:
    number = _num(row, key)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise BadRecord(f"key {key!r}: {row[key]!r} is not an integer")
    return int(number)


def _bool(row: dict[str, Any], key: str) -> bool | None:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRecord(f"key {key!r} must be a boolean, not {type(value).__name__}")


#: address texts that normal_ip() gave back unchanged (it is a pure function of the text, so they always
#: will): _event keeps such a text without the calls.  Bounded: the input names the addresses.
_CANONICAL_IPS: set[str] = set()
_CANONICAL_IPS_SIZE = 65_536


def _ip(row: dict[str, Any], key: str) -> str | None:
    value = _str(row, key)
    if value is None:
        return None
    try:
        normal = normal_ip(value)
    except ValueError:
        raise BadRecord(f"key {key!r}: {value!r} is not an IP address") from None
    if normal == value and type(value) is str and len(_CANONICAL_IPS) < _CANONICAL_IPS_SIZE:
        _CANONICAL_IPS.add(value)
    return normal


def _timestamp(row: dict[str, Any]) -> datetime:
    value = row.get("ts")
    if type(value) is Decimal and value.is_finite():
        seconds = value or _ZERO  # JSON epoch seconds with a fraction: what _num() gives for them, without the call
    else:
        if value is None:
            raise BadRecord("key 'ts' is missing")
        if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
            try:
                return parse_ts(value)  # Zeek JSON with LogAscii::json_timestamps = JSON::TS_ISO8601
            except EventValidationError as exc:
                raise BadRecord(f"key 'ts': {exc}") from exc
        seconds = _num(row, "ts") or _ZERO
    micros = int((seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN))
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise BadRecord(f"key 'ts': {value!r} is out of range") from None


def _unique(*values: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


# per log type ------------------------------------------------------------------------
def _conn(row: dict[str, Any], fields: dict[str, Value]) -> None:
    fields["event.type"] = ("connection",)
    fields["event.action"] = "connection"
    service = _str(row, "service")
    if service:
        fields["network.protocol"] = service.split(",")[0].lower()  # "ssl,http": the first analyser that matched
    duration = _num(row, "duration")
    if duration is not None:
        fields["event.duration"] = int((duration * 1_000_000_000).to_integral_value(ROUND_HALF_EVEN))
    orig, resp = _int(row, "orig_bytes"), _int(row, "resp_bytes")
    fields.update({k: v for k, v in (("source.bytes", orig), ("destination.bytes", resp)) if v is not None})
    if orig is not None and resp is not None:
        fields["network.bytes"] = orig + resp
    packets = (_int(row, "orig_pkts"), _int(row, "resp_pkts"))
    if packets[0] is not None and packets[1] is not None:
        fields["network.packets"] = packets[0] + packets[1]
    state = _str(row, "conn_state")
    if state in CONN_ESTABLISHED:
        fields["event.outcome"] = "success"
    elif state in CONN_FAILED:
        fields["event.outcome"] = "failure"
    local_orig, local_resp = _bool(row, "local_orig"), _bool(row, "local_resp")
    if local_orig is not None and local_resp is not None:
        fields["network.direction"] = DIRECTIONS[(local_orig, local_resp)]
    if state:
        fields["message"] = f"{fields['message']} {service or '-'} {state}"


def _dns(row: dict[str, Any], fields: dict[str, Value]) -> None:
    fields["event.type"] = ("protocol",)
    fields["event.action"] = "dns_query"
    fields["network.protocol"] = "dns"
    query = _str(row, "query")
    if query is not None:
        fields["dns.question.name"] = query
        fields["message"] = f"{fields['message']} query {query}"
    rcode = _str(row, "rcode_name")
    if rcode is not None:
        fields["event.outcome"] = "success" if rcode == "NOERROR" else "failure"
    answers = row.get("answers")
    if isinstance(answers, (list, tuple)):
        resolved = []
        for answer in answers:
            try:
                resolved.append(str(ipaddress.ip_address(answer)))
            except ValueError:
                continue  # CNAMEs and other names are not addresses
        related = fields.get("related.ip", ())
        known = [str(ip) for ip in related] if isinstance(related, tuple) else []
        if known or resolved:
            fields["related.ip"] = _unique(*known, *resolved)


def _http(row: dict[str, Any], fields: dict[str, Value]) -> None:
    fields["event.category"] = ("network", "web")
    fields["event.type"] = ("protocol", "access")
    fields["event.action"] = "http_request"
    fields["network.protocol"] = "http"
    method, host, uri = _str(row, "method"), _str(row, "host"), _str(row, "uri")
    status = _int(row, "status_code")
    agent, username = _str(row, "user_agent"), _str(row, "username")
    optional: dict[str, Value | None] = {
        "http.request.method": method,
        "url.domain": host.rsplit(":", 1)[0] if host and host.count(":") == 1 else host,
        "url.original": uri,
        "http.response.status_code": status,
        "http.request.bytes": _int(row, "request_body_len"),
        "http.response.bytes": _int(row, "response_body_len"),
        "user_agent.original": agent,
        "user.name": username,
    }
    if uri is not None:
        path, _, query = uri.partition("?")
        optional["url.path"] = path
        optional["url.query"] = query or None
    fields.update({k: v for k, v in optional.items() if v is not None})
    if status is not None:
        fields["event.outcome"] = "success" if status < 400 else "failure"
    fields["message"] = f"{fields['message']} {method or '-'} {host or '-'}{uri or ''} {status or '-'}"


def _modbus_function(func: str) -> tuple[str, int | None, bool]:
    """Snake-cased name, function code and whether Zeek marked it an exception response."""
    upper = func.upper()
    exception = upper.endswith("_EXCEPTION")
    base = upper.removesuffix("_EXCEPTION")
    code = MODBUS_FUNCTION_CODES.get(base)
    unknown = re.fullmatch(r"UNKNOWN-(\d+)", base)
    if unknown is not None:
        code = int(unknown[1]) & 0x7F
    return re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_"), code, exception


def _modbus_common(row: dict[str, Any], fields: dict[str, Value]) -> tuple[str | None, bool]:
    fields["event.type"] = ("protocol",)
    fields["network.protocol"] = "modbus"
    fields["ot.protocol"] = "modbus"
    fields.setdefault("network.transport", "tcp")  # Zeek analyses Modbus/TCP only
    unit = _int(row, "unit") if "unit" in row else _int(row, "unit_id")
    if unit is not None:
        fields["ot.unit_id"] = unit
    func = _str(row, "func")
    if func is None:
        fields["event.action"] = "modbus_message"
        return None, False
    function, code, exception = _modbus_function(func)
    fields["ot.function"] = function
    fields["event.action"] = function
    if code is not None:
        fields["ot.function_code"] = code
    fields["message"] = f"{fields['message']} modbus {function}"
    return function, exception


def _modbus(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _, exception_response = _modbus_common(row, fields)
    pdu = _str(row, "pdu_type")
    if pdu in ("REQ", "RESP"):
        fields["ot.request"] = pdu == "REQ"
    exception = _str(row, "exception")
    if exception:
        fields["ot.exception"] = exception
    fields["event.outcome"] = "failure" if exception or exception_response else "success"


def _register_value(text: str) -> float | None:
    first = text.split(",")[0].strip()
    if first in ("T", "True", "true"):
        return 1.0
    if first in ("F", "False", "false"):
        return 0.0
    try:
        number = Decimal(first)
    except InvalidOperation:
        return None  # ICSNPP writes notes such as "see modbus_mask_write_register.log" here
    value = float(number)
    return value if math.isfinite(value) else None


def _modbus_detailed(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _, exception_response = _modbus_common(row, fields)
    direction = (_str(row, "request_response") or _str(row, "network_direction") or "").upper()
    if direction in ("REQUEST", "RESPONSE"):
        fields["ot.request"] = direction == "REQUEST"
    else:
        is_orig = _bool(row, "is_orig")
        if is_orig is not None:
            fields["ot.request"] = is_orig
    address, quantity = _int(row, "address"), _int(row, "quantity")
    if address is not None:
        fields["ot.register.address"] = address
    if quantity is not None:
        fields["ot.register.count"] = quantity
    values = row.get("values")
    if isinstance(values, (int, Decimal)) and not isinstance(values, bool):
        values = str(values)
    if values is not None and not isinstance(values, str):
        raise BadRecord(f"key 'values' must be a string, not {type(values).__name__}")
    if exception_response:
        fields["ot.exception"] = values or "exception"  # ICSNPP puts the exception name in values
        fields["event.outcome"] = "failure"
        return
    fields["event.outcome"] = "success"
    if values:
        value = _register_value(values)
        if value is not None:
            fields["ot.register.value"] = value
        if address is not None:
            fields["message"] = f"{fields['message']} address {address} values {values}"


# ICS protocol logs as written by Zeek (dnp3) and CISA's ICSNPP parsers -----------------
#: DNP3 function names as Zeek writes them (base/protocols/dnp3/consts.zeek) -> function code
DNP3_FUNCTION_CODES: dict[str, int] = {
    "CONFIRM": 0x00, "READ": 0x01, "WRITE": 0x02, "SELECT": 0x03, "OPERATE": 0x04, "DIRECT_OPERATE": 0x05,
    "DIRECT_OPERATE_NR": 0x06, "IMMED_FREEZE": 0x07, "IMMED_FREEZE_NR": 0x08, "FREEZE_CLEAR": 0x09,
    "FREEZE_CLEAR_NR": 0x0A, "FREEZE_AT_TIME": 0x0B, "FREEZE_AT_TIME_NR": 0x0C, "COLD_RESTART": 0x0D,
    "WARM_RESTART": 0x0E, "INITIALIZE_DATA": 0x0F, "INITIALIZE_APPL": 0x10, "START_APPL": 0x11,
    "STOP_APPL": 0x12, "SAVE_CONFIG": 0x13, "ENABLE_UNSOLICITED": 0x14, "DISABLE_UNSOLICITED": 0x15,
    "ASSIGN_CLASS": 0x16, "DELAY_MEASURE": 0x17, "RECORD_CURRENT_TIME": 0x18, "OPEN_FILE": 0x19,
    "CLOSE_FILE": 0x1A, "DELETE_FILE": 0x1B, "GET_FILE_INFO": 0x1C, "AUTHENTICATE_FILE": 0x1D,
    "ABORT_FILE": 0x1E, "ACTIVATE_CONFIG": 0x1F, "AUTHENTICATE_REQ": 0x20, "AUTHENTICATE_ERR": 0x21,
    "RESPONSE": 0x81, "UNSOLICITED_RESPONSE": 0x82, "AUTHENTICATE_RESP": 0x83,
}  # fmt: skip


@functools.lru_cache(maxsize=4096)  # function and type names repeat on every record
def _snake(text: str) -> str:
    """``write_property`` for ``write-property``, ``send_rr_data`` for ``SendRRData``, ``plc_stop`` for ``PLC Stop``."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")


def _code(row: dict[str, Any], key: str) -> int | None:
    """An ICSNPP code column: an integer, or a string in decimal or ``0x`` hex."""
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return _int(row, key)
    if not isinstance(value, str):
        raise BadRecord(f"key {key!r} must be a code, not {type(value).__name__}")
    try:
        return _code_text(value)
    except ValueError:
        raise BadRecord(f"key {key!r}: {value!r} is not a decimal or 0x-hex code") from None


@functools.lru_cache(maxsize=4096)  # a log's few codes repeat on every record (a ValueError is not remembered)
def _code_text(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _ics(row: dict[str, Any], fields: dict[str, Value], protocol: str, function: str | None) -> None:
    """Fields every ICS log shares: protocol, function, direction."""
    fields["event.type"] = ("protocol",)
    fields["network.protocol"] = protocol
    fields["ot.protocol"] = protocol
    is_orig = row.get("is_orig")
    if is_orig is not None:
        if type(is_orig) is not bool:
            _bool(row, "is_orig")  # raises
        fields["ot.request"] = is_orig
    if function:
        action = _snake(function)
        fields["ot.function"] = action
        fields["event.action"] = action
        fields["message"] = f"{fields['message']} {protocol} {action}"
    else:
        fields["event.action"] = f"{protocol}_message"


def _dnp3(row: dict[str, Any], fields: dict[str, Value]) -> None:
    request, reply = _str(row, "fc_request"), _str(row, "fc_reply")
    function = request or reply
    _ics(row, fields, "dnp3", function)
    fields.setdefault("network.transport", "tcp")
    if function and function.upper() in DNP3_FUNCTION_CODES:
        fields["ot.function_code"] = DNP3_FUNCTION_CODES[function.upper()]
    if request is not None or reply is not None:
        fields["ot.request"] = request is not None
    iin = _int(row, "iin")
    if iin is not None:
        fields["labels.dnp3_iin"] = str(iin)


def _dnp3_control(row: dict[str, Any], fields: dict[str, Value]) -> None:
    function = _str(row, "function_code")
    _ics(row, fields, "dnp3", function)
    if function and function.upper() in DNP3_FUNCTION_CODES:
        fields["ot.function_code"] = DNP3_FUNCTION_CODES[function.upper()]
    index = _int(row, "index_number")
    if index is not None:
        fields["ot.register.address"] = index
    optional = {
        "labels.dnp3_block_type": _str(row, "block_type"),
        "labels.dnp3_operation": _str(row, "operation_type"),
        "labels.dnp3_trip_control": _str(row, "trip_control_code"),
    }
    fields.update({k: v for k, v in optional.items() if v})
    status = _str(row, "status_code")
    if status:
        success = status.upper() == "SUCCESS"
        fields["event.outcome"] = "success" if success else "failure"
        if not success:
            fields["ot.exception"] = status


def _dnp3_objects(row: dict[str, Any], fields: dict[str, Value]) -> None:
    function = _str(row, "function_code")
    _ics(row, fields, "dnp3", function)
    if function and function.upper() in DNP3_FUNCTION_CODES:
        fields["ot.function_code"] = DNP3_FUNCTION_CODES[function.upper()]
    low, count = _int(row, "range_low"), _int(row, "object_count")
    if low is not None:
        fields["ot.register.address"] = low
    if count is not None:
        fields["ot.register.count"] = count
    kind = _str(row, "object_type")
    if kind:
        fields["labels.dnp3_object_type"] = kind


#: the value types _str() lets through unchanged (text, or None for an absent column)
_TEXT_OR_NONE = (str, type(None))


def _s7comm(row: dict[str, Any], fields: dict[str, Value]) -> None:
    """:func:`_s7comm_checked`, without its per-column checks when the text columns are text or absent
    (none of those checks can fail then) and there is no error to report: what the ICS sensor writes."""
    get = row.get
    function, subfunction, rosctr = get("function_name"), get("subfunction_name"), get("rosctr_name")
    if (
        type(function) not in _TEXT_OR_NONE
        or type(subfunction) not in _TEXT_OR_NONE
        or type(rosctr) not in _TEXT_OR_NONE
        or get("error_class") is not None
        or get("error_code") is not None
    ):
        _s7comm_checked(row, fields)
        return
    _ics(row, fields, "s7comm", function or subfunction)
    value = get("function_code")
    if type(value) is str:
        try:
            fields["ot.function_code"] = _code_text(value)
        except ValueError:
            _code(row, "function_code")  # raises, with the column named
    else:
        code = _code(row, "function_code")
        if code is not None:
            fields["ot.function_code"] = code
    if rosctr:
        fields["labels.s7_rosctr"] = rosctr
        fields.setdefault("ot.request", rosctr.lower() in ("job", "userdata"))  # is_orig, when given, wins
    if subfunction:
        fields["labels.s7_subfunction"] = subfunction


def _s7comm_checked(row: dict[str, Any], fields: dict[str, Value]) -> None:
    name = _str(row, "function_name") or _str(row, "subfunction_name")
    _ics(row, fields, "s7comm", name)
    code = _code(row, "function_code")
    if code is not None:
        fields["ot.function_code"] = code
    rosctr = _str(row, "rosctr_name")
    if rosctr:
        fields["labels.s7_rosctr"] = rosctr
        fields.setdefault("ot.request", rosctr.lower() in ("job", "userdata"))  # is_orig, when given, wins
    if _str(row, "subfunction_name"):
        fields["labels.s7_subfunction"] = str(row["subfunction_name"])
    error_class, error_code = _str(row, "error_class"), _str(row, "error_code")
    no_error = ("", "0", "0x00", "no error")
    failed = (error_class or "").lower() not in no_error or (error_code or "").lower() not in no_error
    if error_class is not None or error_code is not None:
        fields["event.outcome"] = "failure" if failed else "success"
        if failed:
            fields["ot.exception"] = " ".join(filter(None, (error_class, error_code)))


def _s7comm_plus(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _ics(row, fields, "s7comm_plus", _str(row, "function_name"))
    fields["ot.protocol"] = "s7comm"  # one industrial protocol family for the OT rules
    code = _code(row, "function_code")
    if code is not None:
        fields["ot.function_code"] = code
    opcode = _str(row, "opcode_name")
    if opcode:
        fields["labels.s7_opcode"] = opcode
        fields["ot.request"] = opcode.lower() == "request"


def _bacnet(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _ics(row, fields, "bacnet", _str(row, "pdu_service"))
    fields.setdefault("network.transport", "udp")
    pdu, bvlc = _str(row, "pdu_type"), _str(row, "bvlc_function")
    if pdu:
        fields["labels.bacnet_pdu_type"] = pdu
    if bvlc:
        fields["labels.bacnet_bvlc_function"] = bvlc
    result = _str(row, "result_code")
    if result:
        fields["event.outcome"] = "success" if result.lower() in ("success", "ack") else "failure"
        if fields["event.outcome"] == "failure":
            fields["ot.exception"] = result


def _enip(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _ics(row, fields, "enip", _str(row, "enip_command"))
    code = _code(row, "enip_command_code")
    if code is not None:
        fields["ot.function_code"] = code
    status = _str(row, "enip_status")
    if status:
        success = status.lower() == "success"
        fields["event.outcome"] = "success" if success else "failure"
        if not success:
            fields["ot.exception"] = status


def _cip(row: dict[str, Any], fields: dict[str, Value]) -> None:
    _ics(row, fields, "enip", _str(row, "cip_service"))
    fields["network.protocol"] = "cip"
    code = _code(row, "cip_service_code")
    if code is not None:
        fields["ot.function_code"] = code
    direction = (_str(row, "direction") or "").lower()
    if direction in ("request", "response"):
        fields["ot.request"] = direction == "request"
    optional = {"labels.cip_class": _str(row, "class_name"), "labels.cip_instance": _str(row, "instance_id")}
    fields.update({k: v for k, v in optional.items() if v})
    status = _str(row, "cip_status")
    if status:
        success = status.lower() == "success"
        fields["event.outcome"] = "success" if success else "failure"
        if not success:
            fields["ot.exception"] = status


#: log type -> the function that adds its own fields to the common ones
MAPPERS: dict[str, Callable[[dict[str, Any], dict[str, Value]], None]] = {
    "conn": _conn,
    "dns": _dns,
    "http": _http,
    "modbus": _modbus,
    "modbus_detailed": _modbus_detailed,
    "dnp3": _dnp3,
    "dnp3_control": _dnp3_control,
    "dnp3_objects": _dnp3_objects,
    "s7comm": _s7comm,
    "s7comm_plus": _s7comm_plus,
    "bacnet": _bacnet,
    "enip": _enip,
    "cip": _cip,
}


class ZeekParser(Parser):
    """Zeek logs, JSON or TSV; conn, dns, http and the ICS protocol logs mapped to ECS/OT fields."""

    name: ClassVar[str] = "zeek"
    dataset: ClassVar[str] = "zeek"
    description: ClassVar[str] = (
        "Zeek logs (JSON lines or TSV with header blocks): conn, dns, http, modbus, dnp3, ICSNPP modbus_detailed, "
        "dnp3_control, dnp3_objects, s7comm, s7comm_plus, bacnet, enip, cip; other logs with the connection fields."
    )

    def __init__(self) -> None:
        self._headers: dict[str, Header] = {}
        self._lock = threading.Lock()

    def parse(self, record: RawRecord) -> list[Event]:
        data = record.data
        # fast path: a line that is one JSON object and nothing else (as Zeek writes them) is decoded once,
        # by the scanner load_json_object runs; every other line takes the general path below
        row = _json_line(data) if data[:1] == "{" else None
        if row is not None:
            declared = row.get("_path")
            # a line that names its log (all Zeek writes): what _json_logtype() gives for it, without the call
            logtype = declared if type(declared) is str and declared else self._json_logtype(row, record)
        else:
            line = data.rstrip("\r\n")
            if not line.strip():
                raise BadRecord("empty line")
            if line.lstrip().startswith("{"):
                row = load_json_object(line, exact_numbers=True)
                logtype = self._json_logtype(row, record)
            elif line.startswith("#"):
                with self._lock:
                    self._headers[record.source] = self._headers.get(record.source, Header()).apply(line)
                return []
            else:
                header = self._header_for(record)
                if header is None:
                    if "\t" in line:
                        raise BadRecord(
                            f"Zeek TSV row but no '#fields' header was seen for {record.source}; "
                            "read the log from its first line"
                        )
                    raise NotMyFormat("neither a Zeek JSON object nor a Zeek TSV row")
                row = header.row(line)
                logtype = header.path or self._logtype_from(record)
        if not logtype:
            raise BadRecord(
                "cannot tell the Zeek log type: no '_path' key or '#path' header, and the source is not a file "
                "named after its log (conn.log, dns.log ...)"
            )
        return [self._event(logtype, row, record)]

    def _json_logtype(self, row: dict[str, Any], record: RawRecord) -> str | None:
        """The log type of a JSON line; NotMyFormat for an object that is not a Zeek log line."""
        declared = row.get("_path")
        if type(declared) is str and declared:
            return declared  # a '_path' key: a Zeek log line, and the type it says
        if not JSON_SIGNATURE & row.keys():
            raise NotMyFormat("JSON object without '_path', 'uid', 'fuid' or 'id.orig_h' is not a Zeek log line")
        return declared if isinstance(declared, str) and declared else self._logtype_from(record)

    @staticmethod
    def _logtype_from(record: RawRecord) -> str | None:
        if record.path:
            return logtype_from_name(record.path)
        if record.source.startswith("file:"):
            return logtype_from_name(record.source[len("file:") :])
        return None

    def _header_for(self, record: RawRecord) -> Header | None:
        with self._lock:
            header = self._headers.get(record.source)
        if header is not None and header.fields:
            return header
        if record.path and record.offset.isdigit():
            found = scan_header(record.path, int(record.offset))
            if found is not None:
                with self._lock:
                    self._headers[record.source] = found
            return found
        return None

    def _event(self, logtype: str, row: dict[str, Any], record: RawRecord) -> Event:
        timestamp = _timestamp(row)
        # the typed accessors' fast paths, inline and in their order (so the first bad column still raises
        # first): an address text normal_ip() gave back unchanged before, an int port, text or None; any
        # other value goes to _ip/_int/_str, which convert it or raise
        get = row.get
        src = get("id.orig_h")
        if type(src) is not str or src not in _CANONICAL_IPS:
            src = _ip(row, "id.orig_h")
        dst = get("id.resp_h")
        if type(dst) is not str or dst not in _CANONICAL_IPS:
            dst = _ip(row, "id.resp_h")
        sport = get("id.orig_p")
        if type(sport) is not int:
            sport = _int(row, "id.orig_p")
        dport = get("id.resp_p")
        if type(dport) is not int:
            dport = _int(row, "id.resp_p")
        proto, community_id, uid = get("proto"), get("community_id"), get("uid")
        if type(proto) is not str and proto is not None:
            _str(row, "proto")  # raises
        if type(community_id) is not str and community_id is not None:
            _str(row, "community_id")
        if type(uid) is not str and uid is not None:
            _str(row, "uid")
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": ("network",),
            "event.type": ("info",),
            "event.action": logtype,
            "event.module": "zeek",
            "event.dataset": f"zeek.{logtype}",
            "event.original": record.data,
            "message": f"zeek {logtype} {src or '-'}:{sport if sport is not None else '-'} -> "
            f"{dst or '-'}:{dport if dport is not None else '-'}",
        }
        # the present ones of source.ip/port, destination.ip/port, network.transport, network.community_id
        # and labels.zeek_uid, in that order
        if src is not None:
            fields["source.ip"] = src
        if sport is not None:
            fields["source.port"] = sport
        if dst is not None:
            fields["destination.ip"] = dst
        if dport is not None:
            fields["destination.port"] = dport
        if proto is not None:
            fields["network.transport"] = proto
        if community_id is not None:
            fields["network.community_id"] = community_id
        if uid is not None:
            fields["labels.zeek_uid"] = uid
        first = src or dst  # related.ip = _unique(src, dst): the non-empty addresses, each once
        if src and dst and src != dst:
            fields["related.ip"] = (src, dst)
        elif first:
            fields["related.ip"] = (first,)
        mapper = MAPPERS.get(logtype)
        if mapper is not None:
            mapper(row, fields)
        try:
            return Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(ZeekParser)

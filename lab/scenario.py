"""The demo scenario: benign city telemetry plus one labelled attack chain.

Attack chain (ground truth in :attr:`Emission.malicious`): a host on the
camera network (10.20.5.66, a compromised camera-network laptop) guesses the
``admin`` password of traffic camera cam-0042, gets in, then sends a Modbus
write to the pumping-station PLC to change a pump setpoint.

Everything is generated from a seed and a start time, so the same inputs give
byte-identical telemetry, in the native formats the collectors read.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ATTACKER_IP = "10.20.5.66"
CAMERA = {"id": "cam-0042", "ip": "10.20.1.42"}
PLC_IP = "10.30.1.10"
SCADA_HMI = "10.30.9.10"
ENG_WS = "10.30.9.20"
VMS = "vms-hn-01"

CAMERAS = [
    {"id": "cam-0041", "ip": "10.20.1.41", "vendor": "Hikvision", "model": "DS-2CD2T47G2", "fw": "V5.7.15"},
    {"id": "cam-0042", "ip": "10.20.1.42", "vendor": "Dahua", "model": "IPC-HFW5442E", "fw": "V2.840.0"},
    {"id": "cam-0043", "ip": "10.20.1.43", "vendor": "Axis", "model": "Q1798-LE", "fw": "10.12.213"},
]
OPERATORS = [("op.nguyen", "10.10.3.21"), ("op.tran", "10.10.3.22"), ("op.le", "10.10.3.23")]
SERVERS = [("ioc-web-01", "10.10.1.10"), ("data-db-01", "10.10.2.20")]
SENSORS = ["aq-001", "aq-002", "aq-003"]

#: channels the demo sends on
SYSLOG_UDP, SYSLOG_TCP = "syslog-udp", "syslog-tcp"
CAMERA_FILE, MODBUS_FILE, CONN_FILE, MQTT_FILE = "camera.jsonl", "modbus_detailed.log", "conn.log", "mqtt.jsonl"

#: the record the demo deliberately breaks, to show the dead-letter path
MALFORMED_CAMERA_LINE = '{"ts": "2026-11-21T00:00:00Z", "platform": "vms-hn-01", "device_id": "cam-0041", "event": '


@dataclass(frozen=True)
class Emission:
    channel: str
    ts: datetime
    line: str
    malicious: bool = False
    label: str = "benign"


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _camera(
    ts: datetime,
    cam: dict[str, str],
    event: str,
    result: str,
    user: str | None,
    src: str,
    detail: str = "",
    stream: str | None = None,
) -> str:
    return json.dumps(
        {
            "ts": _iso(ts),
            "platform": VMS,
            "device_id": cam["id"],
            "device_type": "camera",
            "vendor": cam.get("vendor", "Dahua"),
            "model": cam.get("model", "IPC-HFW5442E"),
            "firmware": cam.get("fw", "V2.840.0"),
            "event": event,
            "result": result,
            "user": user,
            "src_ip": src,
            "dst_ip": cam["ip"],
            "stream": stream,
            "detail": detail,
        },
        sort_keys=True,
    )


def _modbus(
    ts: datetime, rng: random.Random, src: str, func: str, address: int, values: str, request: bool = True
) -> str:
    sport = rng.randint(49152, 65000)
    return json.dumps(
        {
            "ts": round(ts.timestamp(), 6),
            "uid": "C"
            + "".join(rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(17)),
            "id.orig_h": src,
            "id.orig_p": sport,
            "id.resp_h": PLC_IP,
            "id.resp_p": 502,
            "is_orig": request,
            "source_h": src if request else PLC_IP,
            "source_p": sport if request else 502,
            "destination_h": PLC_IP if request else src,
            "destination_p": 502 if request else sport,
            "tid": rng.randint(1, 65535),
            "unit": 1,
            "func": func,
            "request_response": "REQUEST" if request else "RESPONSE",
            "address": address,
            "quantity": 1,
            "values": values,
        },
        sort_keys=True,
    )


def _conn(ts: datetime, rng: random.Random, src: str, dst: str, dport: int, service: str | None) -> str:
    return json.dumps(
        {
            "ts": round(ts.timestamp(), 6),
            "uid": "C" + "".join(rng.choice("abcdefghijkmnpqrstuvwxyz0123456789") for _ in range(17)),
            "id.orig_h": src,
            "id.orig_p": rng.randint(49152, 65000),
            "id.resp_h": dst,
            "id.resp_p": dport,
            "proto": "tcp",
            "service": service,
            "duration": round(rng.uniform(0.01, 2.0), 6),
            "orig_bytes": rng.randint(60, 4000),
            "resp_bytes": rng.randint(60, 40000),
            "conn_state": "SF",
        },
        sort_keys=True,
    )


def _syslog5424(ts: datetime, host: str, app: str, pid: int, msg: str, pri: int = 38) -> str:
    return f"<{pri}>1 {_iso(ts)} {host} {app} {pid} - - {msg}"


def _syslog3164(ts: datetime, host: str, app: str, pid: int, msg: str, pri: int = 86) -> str:
    ts = ts.astimezone(timezone.utc)
    stamp = f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S}"  # BSD syslog pads the day with a space
    return f"<{pri}>{stamp} {host} {app}[{pid}]: {msg}"


def benign(seed: int, start: datetime, minutes: int = 10) -> list[Emission]:
    """A quiet stretch of city telemetry: logins, camera streams, SCADA polling, sensors."""
    rng = random.Random(seed)
    out: list[Emission] = []
    for i in range(minutes * 6):  # every 10 seconds
        ts = start + timedelta(seconds=10 * i + rng.uniform(0, 2))
        # SCADA HMI polls the pumping-station PLC
        out.append(Emission(MODBUS_FILE, ts, _modbus(ts, rng, SCADA_HMI, "READ_HOLDING_REGISTERS", 0, "")))
        out.append(Emission(CONN_FILE, ts, _conn(ts, rng, SCADA_HMI, PLC_IP, 502, "modbus")))
        # air-quality sensors report
        for sensor in SENSORS:
            payload = {
                "pm25": round(rng.uniform(20, 80), 1),
                "no2": round(rng.uniform(10, 60), 1),
                "battery": round(rng.uniform(3.6, 4.1), 2),
            }
            out.append(
                Emission(
                    MQTT_FILE,
                    ts,
                    json.dumps(
                        {
                            "ts": _iso(ts),
                            "topic": f"city/ba-dinh/air-quality/{sensor}/telemetry",
                            "client_id": sensor,
                            "payload": payload,
                        },
                        sort_keys=True,
                    ),
                )
            )
        if i % 6 == 0:  # once a minute: operators watch streams, servers log
            user, ip = rng.choice(OPERATORS)
            cam = rng.choice(CAMERAS)
            out.append(Emission(CAMERA_FILE, ts, _camera(ts, cam, "login", "success", user, ip)))
            out.append(
                Emission(
                    CAMERA_FILE,
                    ts + timedelta(seconds=1),
                    _camera(ts + timedelta(seconds=1), cam, "stream_access", "success", user, ip, stream="main"),
                )
            )
            host, _ = rng.choice(SERVERS)
            out.append(
                Emission(
                    SYSLOG_UDP,
                    ts,
                    _syslog5424(
                        ts,
                        host,
                        "sshd",
                        rng.randint(1000, 9000),
                        f"Accepted publickey for deploy from {ENG_WS if host == 'data-db-01' else '10.10.3.5'} "
                        f"port {rng.randint(40000, 60000)} ssh2: ED25519 SHA256:kq9dV0",
                    ),
                )
            )
            out.append(
                Emission(
                    SYSLOG_TCP,
                    ts,
                    _syslog3164(
                        ts,
                        host,
                        "CRON",
                        rng.randint(1000, 9000),
                        "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
                    ),
                )
            )
        if i % 30 == 15:  # engineers adjust a setpoint from the engineering workstation
            out.append(
                Emission(
                    MODBUS_FILE, ts, _modbus(ts, rng, ENG_WS, "WRITE_SINGLE_REGISTER", 9, str(rng.randint(3000, 3400)))
                )
            )
    out.append(Emission(CAMERA_FILE, start + timedelta(seconds=30), MALFORMED_CAMERA_LINE, label="malformed"))
    return sorted(out, key=lambda e: (e.ts, e.channel, e.line))


def attack(seed: int, start: datetime) -> list[Emission]:
    """The labelled attack chain, starting at ``start``."""
    rng = random.Random(seed + 1)
    out: list[Emission] = []
    ts = start
    for _ in range(8):  # password guessing against the camera's web login
        out.append(
            Emission(
                CAMERA_FILE,
                ts,
                _camera(
                    ts,
                    CAMERAS[1],
                    "login",
                    "failure",
                    "admin",
                    ATTACKER_IP,
                    detail="web login rejected; UA=<script>alert('xss')</script>",
                ),
                True,
                "camera-bruteforce",
            )
        )
        ts += timedelta(milliseconds=rng.randint(150, 400))
    out.append(
        Emission(
            CAMERA_FILE,
            ts,
            _camera(ts, CAMERAS[1], "login", "success", "admin", ATTACKER_IP, detail="web login"),
            True,
            "camera-bruteforce",
        )
    )
    ts += timedelta(seconds=1)
    out.append(Emission(CONN_FILE, ts, _conn(ts, rng, ATTACKER_IP, PLC_IP, 502, "modbus"), True, "ot-pivot"))
    out.append(
        Emission(MODBUS_FILE, ts, _modbus(ts, rng, ATTACKER_IP, "WRITE_SINGLE_REGISTER", 9, "4500"), True, "ot-pivot")
    )
    return out

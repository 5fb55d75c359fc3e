"""Benign city telemetry, seeded and deterministic, in the native formats the collectors read.

Every source is a generator of :class:`Record` lines for one collector parser
(:data:`CHANNELS`): syslog (RFC 5424 and RFC 3164), Windows/Sysmon events as
EVTX-JSON, web/API access logs (combined format with ``key=value`` extras),
Zeek ``conn``/``modbus_detailed``/``dnp3``/``s7comm``/``bacnet`` JSON lines,
SCADA historian CSV (tanks that fill and drain with pump states over a daily
demand cycle, from :mod:`lab.scada`), MQTT device telemetry JSON, and camera-
and IoT-platform JSON logs.  Devices, hosts and addresses come from the city
model (:mod:`lab.city`), by role.

Volumes follow daily and weekly rhythms (:func:`activity`): office systems
are busy on weekday working hours, the city's traffic has morning and evening
peaks, sensors report at a fixed cadence.  ``Rates`` gives each source's
records per hour at full activity.  Every source draws from its own
``random.Random`` seeded from (seed, source name), so the same seed and window
give byte-identical lines, and adding a source does not change the others.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from lab import scada
from lab.city import City

#: channel -> the collector parser that reads its lines
CHANNELS: dict[str, str] = {
    "syslog": "syslog",
    "windows": "windows.evtx",
    "web": "web.access",
    "zeek": "zeek",
    "scada": "scada.csv",
    "mqtt": "iot.mqtt",
    "camera": "camera.platform",
    "iot": "iot.platform",
}
SLOT = timedelta(minutes=10)
#: the operators' desks (the operations centre) and the outside addresses of open-data developers and citizens
OPERATORS = (("op.nguyen", "10.10.3.21"), ("op.tran", "10.10.3.22"), ("op.le", "10.10.3.23"))
DEVELOPERS = (("key-dev-0007", "203.0.113.17"), ("key-dev-0012", "198.51.100.40"), ("key-dev-0031", "203.0.113.88"))
INTEGRATIONS = (("key-iot-platform", "10.40.0.5"), ("key-traffic-vms", "10.20.0.5"), ("key-citizen-app", "10.10.1.30"))
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)


class TelemetryError(Exception):
    """Bad generator settings; the message names the setting."""


@dataclass(frozen=True)
class Record:
    """One line as a collector receives it, with its ground-truth label."""

    channel: str
    ts: datetime
    line: str
    malicious: bool = False
    label: str = "benign"

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise TelemetryError(f"unknown channel {self.channel!r}; known: {', '.join(CHANNELS)}")


@dataclass(frozen=True)
class Rates:
    """Records per hour of each source at full activity (SCADA rows come every 15 minutes regardless)."""

    syslog: float = 120
    windows: float = 300
    web: float = 600
    zeek: float = 250
    mqtt: float = 96
    camera: float = 60
    iot: float = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise TelemetryError(f"rate {f.name}: {value!r} is not a non-negative number of records per hour")

    def scaled(self, factor: float) -> Rates:
        return Rates(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


def activity(ts: datetime, rhythm: str) -> float:
    """Share of full activity at ``ts`` (UTC+7 local time) for a rhythm: office, traffic or flat."""
    local = ts.astimezone(timezone(timedelta(hours=7)))
    hour = local.hour + local.minute / 60
    weekend = local.weekday() >= 5
    if rhythm == "office":
        day = 1.0 if 8 <= hour < 17.5 else (0.35 if 7 <= hour < 8 or 17.5 <= hour < 20 else 0.05)
        return day * (0.15 if weekend else 1.0)
    if rhythm == "traffic":  # morning and evening rush hours over a daytime base
        peaks = math.exp(-(((hour - 7.5) / 1.3) ** 2)) + math.exp(-(((hour - 17.8) / 1.5) ** 2))
        base = 0.15 + 0.45 * (1 if 6 <= hour < 22 else 0)
        return min(1.0, (base + 0.5 * peaks) * (0.75 if weekend else 1.0))
    return 1.0


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}:{name}".encode()))


def _uid(rng: random.Random) -> str:
    return "C" + "".join(rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(17))


# --- line formats ------------------------------------------------------------------------------------


def syslog5424(ts: datetime, host: str, app: str, pid: int, msg: str, pri: int = 38) -> str:
    return f"<{pri}>1 {iso(ts)} {host} {app} {pid} - - {msg}"


def syslog3164(ts: datetime, host: str, app: str, pid: int, msg: str, pri: int = 86) -> str:
    ts = ts.astimezone(timezone.utc)
    return f"<{pri}>{ts:%b} {ts.day:2d} {ts:%H:%M:%S} {host} {app}[{pid}]: {msg}"  # BSD syslog pads the day


def evtx(
    ts: datetime, computer: str, channel: str, provider: str, event_id: int, record_id: int, data: dict[str, str]
) -> str:
    """One event in the EVTX-as-JSON layout of ``evtx_dump``."""
    return json.dumps(
        {
            "Event": {
                "System": {
                    "Provider": {"#attributes": {"Name": provider}},
                    "EventID": event_id,
                    "Level": 4,
                    "TimeCreated": {"#attributes": {"SystemTime": ts.astimezone(timezone.utc).isoformat()}},
                    "EventRecordID": record_id,
                    "Channel": channel,
                    "Computer": computer,
                },
                "EventData": data,
            }
        },
        sort_keys=True,
    )


SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
SECURITY = ("Security", "Microsoft-Windows-Security-Auditing")


def sysmon_process(
    ts: datetime, computer: str, record_id: int, image: str, command: str, parent: str, user: str, pid: int
) -> str:
    return evtx(
        ts, computer, *SYSMON, 1, record_id,
        {
            "RuleName": "-", "UtcTime": ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "ProcessId": str(pid),
            "Image": image, "CommandLine": command, "CurrentDirectory": "C:\\Users\\" + user.split("\\")[-1] + "\\",
            "User": user, "IntegrityLevel": "Medium", "ParentImage": parent,
            "ParentCommandLine": parent.rsplit("\\", 1)[-1],
        },
    )  # fmt: skip


def web_line(
    ts: datetime, client: str, user: str, method: str, path: str, status: int, size: int, agent: str,
    latency: float, request_id: str, api_key: str | None = None,
) -> str:
    """Combined log format with the gateway's ``rt``/``request_id``/``api_key_id`` extras (local time, UTC+7)."""
    local = ts.astimezone(timezone(timedelta(hours=7)))
    line = (
        f'{client} - {user} [{local:%d/%b/%Y:%H:%M:%S %z}] "{method} {path} HTTP/1.1" {status} {size} "-" '
        f'"{agent}" rt={latency:.3f} request_id={request_id}'
    )
    return line + (f" api_key_id={api_key}" if api_key else "")


def zeek(path: str, ts: datetime, row: dict[str, object]) -> str:
    return json.dumps({"_path": path, "ts": round(ts.timestamp(), 6), **row}, sort_keys=True)


def conn(
    ts: datetime, rng: random.Random, src: str, dst: str, dport: int, service: str | None,
    orig_bytes: int | None = None, resp_bytes: int | None = None, state: str = "SF", proto: str = "tcp",
) -> str:
    return zeek("conn", ts, {
        "uid": _uid(rng), "id.orig_h": src, "id.orig_p": rng.randint(49152, 65000), "id.resp_h": dst,
        "id.resp_p": dport, "proto": proto, "service": service, "duration": round(rng.uniform(0.01, 2.0), 6),
        "orig_bytes": rng.randint(60, 4000) if orig_bytes is None else orig_bytes,
        "resp_bytes": rng.randint(60, 40000) if resp_bytes is None else resp_bytes, "conn_state": state,
    })  # fmt: skip


def modbus(ts: datetime, rng: random.Random, src: str, plc: str, func: str, address: int, values: str) -> str:
    sport = rng.randint(49152, 65000)
    return zeek("modbus_detailed", ts, {
        "uid": _uid(rng), "id.orig_h": src, "id.orig_p": sport, "id.resp_h": plc, "id.resp_p": 502,
        "is_orig": True, "source_h": src, "source_p": sport, "destination_h": plc, "destination_p": 502,
        "tid": rng.randint(1, 65535), "unit": 1, "func": func, "request_response": "REQUEST", "address": address,
        "quantity": 1, "values": values,
    })  # fmt: skip


def s7comm(ts: datetime, rng: random.Random, src: str, plc: str, function: str, code: str) -> str:
    return zeek("s7comm", ts, {
        "uid": _uid(rng), "id.orig_h": src, "id.orig_p": rng.randint(49152, 65000), "id.resp_h": plc,
        "id.resp_p": 102, "is_orig": True, "rosctr_code": 1, "rosctr_name": "Job",
        "pdu_reference": rng.randint(1, 65535), "function_code": code, "function_name": function,
    })  # fmt: skip


def camera(
    ts: datetime, platform: str, cam: tuple[str, str, dict[str, object]], event: str, result: str | None,
    user: str | None, src: str | None, detail: str = "", stream: str | None = None, firmware: str | None = None,
) -> str:
    device, ip, extra = cam
    return json.dumps({
        "ts": iso(ts), "platform": platform, "device_id": device, "device_type": "camera",
        "vendor": str(extra.get("vendor", "")), "model": str(extra.get("model", "")),
        "firmware": firmware or str(extra.get("firmware", "")), "event": event, "result": result, "user": user,
        "src_ip": src, "dst_ip": ip, "stream": stream, "detail": detail,
    }, sort_keys=True)  # fmt: skip


def iot_platform(
    ts: datetime, platform: str, event: str, device: str, dtype: str, user: str | None, ip: str,
    command: str | None = None, result: str = "success", area: str = "",
) -> str:
    doc: dict[str, object] = {
        "timestamp": iso(ts), "platform": platform, "event_type": event, "result": result, "protocol": "mqtt",
        "device": {"id": device, "type": dtype}, "actor": {"ip": ip, **({"user": user} if user else {})},
    }  # fmt: skip
    if command:
        doc["command"] = command
    if area:
        doc["area"] = area
    return json.dumps(doc, sort_keys=True)


def mqtt(ts: datetime, topic: str, client: str, payload: dict[str, object]) -> str:
    return json.dumps({"ts": iso(ts), "topic": topic, "client_id": client, "payload": payload}, sort_keys=True)


# --- benign sources --------------------------------------------------------------------------------


@dataclass
class Context:
    city: City
    rng: random.Random
    counters: dict[str, int]

    def next_id(self, key: str) -> int:
        self.counters[key] = self.counters.get(key, 1000) + 1
        return self.counters[key]


Source = Callable[[Context, datetime], list[Record]]


def _syslog(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    servers = [h for role in ("web", "api", "database", "server", "linux-server") for h in ctx.city.hosts(role)]
    host, _ = rng.choice(servers)
    kind = rng.random()
    if kind < 0.35:
        _, ip = rng.choice(OPERATORS)
        msg = f"Accepted publickey for deploy from {ip} port {rng.randint(40000, 60000)} ssh2: ED25519 SHA256:kq9dV0"
        return [Record("syslog", ts, syslog5424(ts, host, "sshd", rng.randint(1000, 9000), msg))]
    if kind < 0.7:
        msg = "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
        return [Record("syslog", ts, syslog3164(ts, host, "CRON", rng.randint(1000, 9000), msg))]
    unit = rng.choice(("logrotate.service", "apt-daily.service", "certbot.timer", "fstrim.service"))
    msg = f"Started {unit}."
    return [Record("syslog", ts, syslog5424(ts, host, "systemd", 1, msg, pri=30))]


_DESKTOP_APPS = (
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "chrome.exe --type=renderer"),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE", "OUTLOOK.EXE"),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", 'WINWORD.EXE /n "C:\\Users\\{u}\\Documents'
     '\\report.docx"'),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE", "EXCEL.EXE"),
    ("C:\\Windows\\System32\\notepad.exe", "notepad.exe"),
)


def _windows(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    desktops = ctx.city.hosts("windows-desktop")
    host, ip = rng.choice(desktops)
    user = f"CITY\\{host.split('-')[0]}.user{host[-1]}"
    kind = rng.random()
    if kind < 0.5:
        image, command = rng.choice(_DESKTOP_APPS)
        line = sysmon_process(ts, host, ctx.next_id(host), image, command.replace("{u}", user.split("\\")[1]),
                              "C:\\Windows\\explorer.exe", user, rng.randint(2000, 30000))
        return [Record("windows", ts, line)]
    if kind < 0.8:  # the desktop maps the agency's file server: a network logon there
        servers = [(h, a) for h, a in ctx.city.hosts("windows-server") if h.split("-")[0] == host.split("-")[0]]
        server, _ = rng.choice(servers or ctx.city.hosts("windows-server"))
        line = evtx(ts, server, *SECURITY, 4624, ctx.next_id(server), {
            "TargetUserName": user.split("\\")[1], "TargetDomainName": "CITY", "LogonType": "3",
            "IpAddress": ip, "IpPort": str(rng.randint(49152, 65000)), "AuthenticationPackageName": "Kerberos",
            "WorkstationName": host.upper(), "LogonProcessName": "Kerberos",
        })  # fmt: skip
        return [Record("windows", ts, line)]
    line = evtx(ts, host, *SYSMON, 3, ctx.next_id(host), {
        "RuleName": "-", "Image": "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "User": user,
        "Protocol": "tcp", "SourceIp": ip, "SourcePort": str(rng.randint(49152, 65000)),
        "DestinationIp": rng.choice(("142.250.66.78", "13.107.42.14", "104.16.132.229")), "DestinationPort": "443",
    })  # fmt: skip
    return [Record("windows", ts, line)]


_API_PATHS = (
    "/api/v1/air-quality?district=ba-dinh", "/api/v1/air-quality?district=dong-da", "/api/v1/traffic/flow?zone=4",
    "/api/v1/lights?zone=2", "/api/v1/flood/levels", "/api/v1/parking/availability?area=hoan-kiem",
    "/api/v1/transit/buses/32/eta", "/api/v1/incidents/open",
)  # fmt: skip
_PORTAL_PATHS = ("/ioc/dashboard", "/ioc/map", "/ioc/cameras", "/ioc/alerts", "/static/app.js", "/static/app.css")


def _web(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    rid = f"{rng.getrandbits(32):08x}"
    kind = rng.random()
    if kind < 0.3:  # operators on the operations-centre portal
        user, ip = rng.choice(OPERATORS)
        path = rng.choice(_PORTAL_PATHS)
        line = web_line(ts, ip, user, "GET", path, 200, rng.randint(800, 90000), BROWSER_UA,
                        rng.uniform(0.005, 0.3), rid)
        return [Record("web", ts, line)]
    if kind < 0.8:  # integrations and the citizen app behind the gateway
        key, ip = rng.choice(INTEGRATIONS)
        agent = "citysoc-integration/2.1" if key != "key-citizen-app" else "okhttp/4.12.0"
    else:  # open-data developers from the Internet, each with their own key
        key, ip = rng.choice(DEVELOPERS)
        agent = rng.choice(("python-requests/2.32.3", "curl/8.5.0", "PostmanRuntime/7.42.0"))
    path = rng.choice(_API_PATHS)
    status = 200 if rng.random() < 0.97 else rng.choice((304, 404, 429))
    line = web_line(ts, ip, "-", "GET", path, status, rng.randint(200, 24000), agent, rng.uniform(0.004, 0.2),
                    rid, key)
    return [Record("web", ts, line)]


def _zeek(ctx: Context, ts: datetime) -> list[Record]:
    rng, city = ctx.rng, ctx.city
    kind = rng.random()
    if kind < 0.3:  # the water HMI polls its PLCs
        [(_, hmi)] = city.hosts("hmi")[:1]
        plc = rng.choice([a.ips[0] for a in city.role("plc-modbus")])
        return [
            Record("zeek", ts, modbus(ts, rng, hmi, plc, "READ_HOLDING_REGISTERS", rng.choice((0, 4, 9)), "")),
            Record("zeek", ts, conn(ts, rng, hmi, plc, 502, "modbus")),
        ]
    if kind < 0.33:  # engineers tune a pump setpoint within range, from the engineering workstation
        [(_, eng)] = city.hosts("engineering")[:1]
        plc = city.role("plc-modbus")[0].ips[0]
        value = str(rng.randint(3000, 3400))
        return [Record("zeek", ts, modbus(ts, rng, eng, plc, "WRITE_SINGLE_REGISTER", 9, value))]
    if kind < 0.45:  # the drainage HMI reads the S7 PLC, the power master polls the RTU
        drain_hmi = next(ip for host, ip in city.hosts("hmi") if host.startswith("drain"))
        plc = city.role("plc-s7")[0].ips[0]
        out = [Record("zeek", ts, s7comm(ts, rng, drain_hmi, plc, "Read Var", "0x04"))]
        master = next(ip for host, ip in city.hosts("hmi") if host.startswith("power"))
        rtu = city.role("rtu-dnp3")[0].ips[0]
        row = {"uid": _uid(rng), "id.orig_h": master, "id.orig_p": rng.randint(49152, 65000), "id.resp_h": rtu,
               "id.resp_p": 20000, "fc_request": "READ", "fc_reply": None, "iin": None}
        out.append(Record("zeek", ts, zeek("dnp3", ts, row)))
        return out
    if kind < 0.5:  # building management reads its controllers
        bms_ws = city.asset("bms-ws").ips[0]
        bms = city.asset("bms-cityhall").ips[0]
        row = {"uid": _uid(rng), "id.orig_h": bms_ws, "id.orig_p": 47808, "id.resp_h": bms, "id.resp_p": 47808,
               "is_orig": True, "pdu_type": "BACnet-Confirmed-Request-PDU",
               "pdu_service": "read-property", "invoke_id": rng.randint(0, 255), "result_code": None}
        return [Record("zeek", ts, zeek("bacnet", ts, row))]
    if kind < 0.7:  # cameras stream to the VMS
        _, _, ip = rng.choice(city.devices("camera"))
        vms = city.role("vms")[0].ips[0]
        return [Record("zeek", ts, conn(ts, rng, vms, ip or vms, 554, "rtsp", rng.randint(200, 2000),
                                        rng.randint(2_000_000, 40_000_000)))]
    if kind < 0.85:  # office traffic to file servers and the Internet
        _, ip = rng.choice(city.hosts("windows-desktop"))
        if rng.random() < 0.5:
            server = rng.choice(city.hosts("windows-server"))[1]
            return [Record("zeek", ts, conn(ts, rng, ip, server, 445, "smb"))]
        dst = rng.choice(("142.250.66.78", "13.107.42.14", "104.16.132.229"))
        return [Record("zeek", ts, conn(ts, rng, ip, dst, 443, "ssl", rng.randint(500, 20000),
                                        rng.randint(2000, 3_000_000)))]
    # servers: the ETL job reads the database, the data platform pushes a nightly backup inside the city
    etl, db = city.asset("data-etl").ips[0], city.asset("data-platform").ips[0]
    return [Record("zeek", ts, conn(ts, rng, etl, db, 5432, "postgresql", rng.randint(1000, 50000),
                                    rng.randint(10_000, 5_000_000)))]


def _mqtt(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    asset, device, _ = rng.choice(ctx.city.devices("sensor"))
    district = asset.area.lower().replace(" ", "-")
    hour = ts.astimezone(timezone(timedelta(hours=7))).hour
    if device.startswith("wl-"):
        payload: dict[str, object] = {
            "level_cm": round(rng.uniform(35, 60), 1), "battery": round(rng.uniform(3.6, 4.1), 2)
        }
        topic = f"city/{district}/flood/{device}/telemetry"
    else:
        rush = 1.6 if hour in (7, 8, 17, 18) else 1.0
        payload = {
            "pm25": round(rng.uniform(20, 55) * rush, 1), "no2": round(rng.uniform(10, 40) * rush, 1),
            "noise_db": round(rng.uniform(48, 62) + (8 if 6 <= hour < 22 else 0), 1),
            "battery": round(rng.uniform(3.6, 4.1), 2),
        }  # fmt: skip
        topic = f"city/{district}/air-quality/{device}/telemetry"
    return [Record("mqtt", ts, mqtt(ts, topic, device, payload))]


def _camera(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    vms = ctx.city.role("vms")[0].hostnames[0]
    asset, device, ip = rng.choice(ctx.city.devices("camera"))
    cam = (device, ip or "", dict(asset.extra))
    user, src = rng.choice(OPERATORS)
    if rng.random() < 0.25:
        return [Record("camera", ts, camera(ts, vms, cam, "login", "success", user, src, detail="web login"))]
    return [Record("camera", ts, camera(ts, vms, cam, "stream_access", "success", user, src, stream="main"))]


def _iot(ctx: Context, ts: datetime) -> list[Record]:
    rng = ctx.rng
    platform = ctx.city.role("iot-platform")[0].hostnames[0]
    asset, device, _ = rng.choice(ctx.city.devices("streetlight"))
    area = asset.area.lower().replace(" ", "-")
    hour = ts.astimezone(timezone(timedelta(hours=7))).hour
    if rng.random() < 0.5:  # the dimming schedule runs as a service account
        level = 100 if hour >= 18 or hour < 6 else 0
        return [Record("iot", ts, iot_platform(ts, platform, "command_sent", device, "streetlight", "svc-scheduler",
                                               "10.40.0.5", command=f"dim {level}%", area=area))]
    event = rng.choice(("connected", "command_result", "auth_success"))
    return [Record("iot", ts, iot_platform(ts, platform, event, device, "streetlight", None, "10.40.0.5", area=area))]


#: source name -> (generator, rhythm)
SOURCES: dict[str, tuple[Source, str]] = {
    "syslog": (_syslog, "flat"),
    "windows": (_windows, "office"),
    "web": (_web, "traffic"),
    "zeek": (_zeek, "flat"),
    "mqtt": (_mqtt, "flat"),
    "camera": (_camera, "traffic"),
    "iot": (_iot, "flat"),
}


def scada_records(table: scada.Table, malicious_label: str = "") -> list[Record]:
    """A historian CSV export of a :func:`lab.scada.simulate` table: the header, then one row per step."""
    header = ",".join(("DATETIME", *table.columns))
    out = [Record("scada", table.times[0] - timedelta(seconds=1), header)]
    labels = table.labels
    for i, ts in enumerate(table.times):
        row = ",".join((ts.strftime("%Y-%m-%dT%H:%M:%SZ"), *(f"{v:.4f}" for v in table.values[i])))
        bad = bool(labels is not None and labels[i])
        out.append(Record("scada", ts, row, bad, malicious_label if bad else "benign"))
    return out


def benign(
    city: City,
    seed: int,
    start: datetime,
    hours: float,
    rates: Rates | None = None,
    sources: Iterable[str] | None = None,
    scada_attacks: Sequence[scada.Attack] = (),
    scada_label: str = "",
) -> list[Record]:
    """Benign telemetry of the city from ``start`` for ``hours``, sorted by time (SCADA rows included if asked)."""
    if hours <= 0:
        raise TelemetryError(f"hours must be positive, got {hours}")
    rates = rates or Rates()
    names = list(sources) if sources is not None else [*SOURCES, "scada"]
    unknown = [n for n in names if n not in SOURCES and n != "scada"]
    if unknown:
        raise TelemetryError(f"unknown telemetry source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}, scada")
    end = start + timedelta(hours=hours)
    out: list[Record] = []
    for name in names:
        if name == "scada":
            days = math.ceil(hours / 24)
            table = scada.simulate(days, seed=zlib.crc32(f"{seed}:scada".encode()) % 2**31, attacks=scada_attacks,
                                   start=start)
            out.extend(r for r in scada_records(table, scada_label) if r.ts < end)
            continue
        generate, rhythm = SOURCES[name]
        ctx = Context(city, _rng(seed, name), {})
        width = min(SLOT, end - start)  # the load generator asks for windows of seconds
        per_slot = getattr(rates, name) * width.total_seconds() / 3600
        slot = start
        while slot < end:
            expected = per_slot * activity(slot, rhythm)
            count = int(expected) + (1 if ctx.rng.random() < expected - int(expected) else 0)
            offsets = sorted(ctx.rng.uniform(0, width.total_seconds()) for _ in range(count))
            for offset in offsets:
                ts = slot + timedelta(seconds=round(offset, 3))
                if ts < end:
                    out.extend(generate(ctx, ts))
            slot += width
    return sort_records(out)


def sort_records(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.ts, r.channel, r.line))


def ndjson(records: Iterable[Record]) -> str:
    """The records as NDJSON (channel, ts, malicious, label, line): what ``citysoc lab emit`` prints."""
    return "".join(
        json.dumps({"channel": r.channel, "ts": iso(r.ts), "malicious": r.malicious, "label": r.label, "line": r.line})
        + "\n"
        for r in records
    )

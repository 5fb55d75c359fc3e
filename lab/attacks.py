"""Attack step kinds: what a scenario's YAML steps can ask for, each a typed generator of labelled records.

A step kind is a function ``(ctx: StepContext, **params) -> list[Record]``
registered with :func:`step`; its parameters and their types come from its
signature, so a scenario step with an unknown or missing parameter, or one of
the wrong type, is refused with the step's location before anything runs.
Every record a step returns is malicious ground truth, labelled
``<scenario>:<technique>``.  SCADA process attacks (``scada_process``) are not
records of their own: they change the simulated process (:mod:`lab.scada`), and
the rows during the attack are the malicious ones.
"""

from __future__ import annotations

import inspect
import ipaddress
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from lab import telemetry as t
from lab.city import City
from lab.telemetry import Record


class StepError(Exception):
    """A scenario step is invalid; the message says where and why."""


@dataclass(frozen=True)
class StepContext:
    city: City
    rng: random.Random
    start: datetime  # when this step begins (attack start + the step's offset)
    label: str

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=round(seconds, 3))

    def camera(self, device: str) -> tuple[str, str, dict[str, object]]:
        for asset, dev, ip in self.city.devices("camera"):
            if dev == device:
                return dev, ip or "", dict(asset.extra)
        raise StepError(f"no camera {device!r} in the city")

    def ip_of(self, name: str) -> str:
        """An address, or the first address of a host, device or asset of the city."""
        try:
            ipaddress.ip_address(name)
            return name
        except ValueError:
            pass
        register = self.city.register
        asset = register.by_host(name) or register.by_device(name)
        if asset is not None:
            ids = asset.hostnames if name in asset.hostnames else asset.device_ids
            index = ids.index(name)
            return asset.ips[index] if index < len(asset.ips) else asset.ips[0]
        try:
            return register.get(name).ips[0]
        except Exception as exc:  # RegisterError or an asset without address: both are a bad step
            raise StepError(f"{name!r} is neither an address nor a host, device or asset with an address") from exc


StepKind = Callable[..., list[Record]]
#: parameter annotation (a string: annotations are postponed) -> the YAML value types it accepts
_PARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int, "float": (int, float), "str": str, "bool": bool, "list[str]": list, "list[str] | None": list,
}  # fmt: skip
STEP_KINDS: dict[str, StepKind] = {}


def step(name: str) -> Callable[[StepKind], StepKind]:
    def register(fn: StepKind) -> StepKind:
        if name in STEP_KINDS:
            raise StepError(f"step kind {name!r} is registered twice")
        STEP_KINDS[name] = fn
        return fn

    return register


def check_params(kind: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The step's parameters, checked against the kind's signature (names, required, types)."""
    if kind not in STEP_KINDS:
        raise StepError(f"{where}: unknown step kind {kind!r}; known: {', '.join(sorted(STEP_KINDS))}")
    sig = inspect.signature(STEP_KINDS[kind])
    allowed = {n: p for n, p in sig.parameters.items() if n != "ctx"}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise StepError(f"{where}: {kind} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(allowed)}")
    out: dict[str, Any] = {}
    for name, param in allowed.items():
        if name not in params:
            if param.default is inspect.Parameter.empty:
                raise StepError(f"{where}: {kind} needs parameter {name!r}")
            continue
        value, kind_type = params[name], param.annotation
        expected = _PARAM_TYPES.get(kind_type)
        wrong_bool = isinstance(value, bool) != (kind_type == "bool")  # YAML's true is an int to isinstance
        if expected is not None and (not isinstance(value, expected) or wrong_bool):
            raise StepError(f"{where}: {kind}.{name} must be {kind_type}, got {value!r}")
        out[name] = value
    return out


def run_step(kind: str, ctx: StepContext, params: Mapping[str, Any]) -> list[Record]:
    records = STEP_KINDS[kind](ctx, **params)
    return [replace(r, malicious=True, label=ctx.label) for r in records]


def _hosts(prefix: str, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct addresses of a public range such as ``198.51.100.0/24``."""
    net = ipaddress.ip_network(prefix)
    if count > net.num_addresses - 2:
        raise StepError(f"{prefix} has fewer than {count} host addresses")
    picks = rng.sample(range(1, net.num_addresses - 1), count)
    return [str(net.network_address + p) for p in picks]


# --- IoT: cameras and botnets ----------------------------------------------------------------------


@step("camera_logins")
def camera_logins(
    ctx: StepContext, camera: str, source: str, count: int = 1, every: float = 0.5, user: str = "admin",
    result: str = "failure",
) -> list[Record]:
    """Web logins on a camera through its VMS, as password guessing does (result failure) or a hit (success)."""
    vms = ctx.city.role("vms")[0].hostnames[0]
    cam, src = ctx.camera(camera), ctx.ip_of(source)
    return [
        Record("camera", ctx.at(i * every), t.camera(ctx.at(i * every), vms, cam, "login", result, user, src,
                                                     detail="web login"))
        for i in range(count)
    ]  # fmt: skip


@step("camera_firmware")
def camera_firmware(ctx: StepContext, camera: str, source: str, firmware: str, user: str = "admin") -> list[Record]:
    """A firmware image pushed to a camera (an implant for persistence)."""
    vms = ctx.city.role("vms")[0].hostnames[0]
    cam, src = ctx.camera(camera), ctx.ip_of(source)
    line = t.camera(ctx.start, vms, cam, "firmware_update", "success", user, src, firmware=firmware,
                    detail="firmware upload via web UI")
    return [Record("camera", ctx.start, line)]


@step("telnet_scan")
def telnet_scan(
    ctx: StepContext, source: str, targets: int = 50, network: str = "198.18.0.0/15", every: float = 0.05,
    ports: list[str] | None = None,
) -> list[Record]:
    """Mirai-style scanning: SYNs to random addresses on telnet ports, unanswered (Zeek conn state S0)."""
    src = ctx.ip_of(source)
    port_list = [int(p) for p in (ports or ["23", "2323"])]
    out = []
    for i, dst in enumerate(_hosts(network, targets, ctx.rng)):
        ts = ctx.at(i * every)
        out.append(Record("zeek", ts, t.conn(ts, ctx.rng, src, dst, ctx.rng.choice(port_list), None, 0, 0, "S0")))
    return out


# --- OT: Modbus and S7 ----------------------------------------------------------------------------------


@step("modbus_write")
def modbus_write(
    ctx: StepContext, source: str, plc: str, address: int, values: list[str], every: float = 60.0
) -> list[Record]:
    """Register writes to a PLC, one per value, ``every`` seconds apart."""
    src, dst = ctx.ip_of(source), ctx.ip_of(plc)
    return [
        Record("zeek", ctx.at(i * every), t.modbus(ctx.at(i * every), ctx.rng, src, dst, "WRITE_SINGLE_REGISTER",
                                                   address, str(v)))
        for i, v in enumerate(values)
    ]  # fmt: skip


@step("s7_functions")
def s7_functions(ctx: StepContext, source: str, plc: str, functions: list[str], every: float = 2.0) -> list[Record]:
    """S7comm jobs to a PLC (``PLC Stop``, ``Request download``, ``Download block`` ...), with the TCP connection."""
    codes = {"plc stop": "0x29", "request download": "0x1a", "download block": "0x1b", "download ended": "0x1c",
             "read var": "0x04", "write var": "0x05", "plc control": "0x28"}  # fmt: skip
    src, dst = ctx.ip_of(source), ctx.ip_of(plc)
    out = [Record("zeek", ctx.start, t.conn(ctx.start, ctx.rng, src, dst, 102, "s7comm"))]
    for i, name in enumerate(functions):
        if name.lower() not in codes:
            raise StepError(f"unknown S7 function {name!r}; known: {', '.join(sorted(codes))}")
        ts = ctx.at(1 + i * every)
        out.append(Record("zeek", ts, t.s7comm(ts, ctx.rng, src, dst, name, codes[name.lower()])))
    return out


@step("scada_process")
def scada_process(ctx: StepContext, attack: str, hours: float) -> list[Record]:
    """Marker for an attack on the simulated process (``setpoint-drift`` or ``replay``); see :mod:`lab.scada`."""
    return []  # the scoreboard runs the process simulation with the attack; its rows carry the labels


# --- web and API -------------------------------------------------------------------------------------


@step("http_flood")
def http_flood(
    ctx: StepContext, bots: int, requests: int, seconds: float, path: str = "/api/v1/traffic/flow?zone=4",
    network: str = "198.51.100.0/24",
) -> list[Record]:
    """``bots`` addresses each sending ``requests`` API requests within ``seconds``."""
    out = []
    agent = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1)"
    for bot in _hosts(network, bots, ctx.rng):
        for i in range(requests):
            ts = ctx.at(ctx.rng.uniform(0, seconds))
            status = 200 if i < requests // 2 else 503
            rid = f"{ctx.rng.getrandbits(32):08x}"
            out.append(Record("web", ts, t.web_line(ts, bot, "-", "GET", path, status, 180, agent, 0.9, rid)))
    return t.sort_records(out)


@step("api_scrape")
def api_scrape(
    ctx: StepContext, key: str, sources: int, pages: int, path: str, every: float = 2.0,
    network: str = "203.0.113.0/24",
) -> list[Record]:
    """One API key paging through a dataset from many rotating addresses (a leaked key behind proxies)."""
    addresses = _hosts(network, sources, ctx.rng)
    out = []
    for page in range(1, pages + 1):
        ts = ctx.at(page * every)
        rid = f"{ctx.rng.getrandbits(32):08x}"
        line = t.web_line(ts, addresses[page % sources], "-", "GET", f"{path}?page={page}&size=500", 200,
                          ctx.rng.randint(180_000, 260_000), "python-requests/2.31.0", 0.35, rid, key)
        out.append(Record("web", ts, line))
    return out


# --- IT: data platform and Windows ---------------------------------------------------------------------


@step("upload")
def upload(
    ctx: StepContext, source: str, destination: str, megabytes: float, port: int = 443, service: str = "ssl",
    chunks: int = 1,
) -> list[Record]:
    """Outbound transfers from a city host (``chunks`` connections sharing the bytes)."""
    src = ctx.ip_of(source)
    size = int(megabytes * 1_000_000 / chunks)
    return [
        Record("zeek", ctx.at(i * 30), t.conn(ctx.at(i * 30), ctx.rng, src, destination, port, service, size,
                                              ctx.rng.randint(2000, 9000)))
        for i in range(chunks)
    ]  # fmt: skip


@step("syslog")
def syslog(ctx: StepContext, host: str, app: str, message: str) -> list[Record]:
    """One RFC 5424 syslog message from a host."""
    return [Record("syslog", ctx.start, t.syslog5424(ctx.start, host, app, ctx.rng.randint(1000, 9000), message))]


@step("process")
def process(
    ctx: StepContext, host: str, image: str, command: str, parent: str = "C:\\Windows\\explorer.exe",
    user: str = "CITY\\user",
) -> list[Record]:
    """A Sysmon process creation (event 1) on a Windows host."""
    line = t.sysmon_process(ctx.start, host, ctx.rng.randint(50_000, 90_000), image, command, parent, user,
                            ctx.rng.randint(2000, 30000))
    return [Record("windows", ctx.start, line)]


@step("network_logon")
def network_logon(ctx: StepContext, host: str, source: str, user: str) -> list[Record]:
    """A Security 4624 type-3 logon on ``host`` from ``source`` (credentials reused over SMB)."""
    line = t.evtx(ctx.start, host, *t.SECURITY, 4624, ctx.rng.randint(50_000, 90_000), {
        "TargetUserName": user, "TargetDomainName": "CITY", "LogonType": "3", "IpAddress": ctx.ip_of(source),
        "IpPort": str(ctx.rng.randint(49152, 65000)), "AuthenticationPackageName": "NTLM",
        "WorkstationName": source.upper(), "LogonProcessName": "NtLmSsp",
    })  # fmt: skip
    return [Record("windows", ctx.start, line)]


@step("encrypt_files")
def encrypt_files(
    ctx: StepContext, host: str, folder: str, files: int, extension: str, every: float = 0.2
) -> list[Record]:
    """Sysmon file-create events (11) of encrypted copies with the ransomware's extension."""
    out = []
    for i in range(files):
        ts = ctx.at(i * every)
        line = t.evtx(ts, host, *t.SYSMON, 11, ctx.rng.randint(50_000, 90_000), {
            "RuleName": "-", "Image": "C:\\Users\\Public\\svchost32.exe", "ProcessId": "6612",
            "TargetFilename": f"{folder}\\patient_{1000 + i}.pdf{extension}", "User": "NT AUTHORITY\\SYSTEM",
        })  # fmt: skip
        out.append(Record("windows", ts, line))
    return out

"""The lab city: every sector present, loadable into the system register, bad files reported in full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enrichment.assets import AssetRegister
from lab.city import CITY_FILE, CityError, load_city


def test_city_covers_the_sectors_of_the_issue() -> None:
    city = load_city()
    sectors = {a.sector for a in city.register}
    assert {"traffic", "water", "drainage", "power", "lighting", "environment", "buildings", "health", "education",
            "public-services", "public-safety"} <= sectors
    roles = {str(a.extra["role"]) for a in city.register}
    assert {"camera", "plc-modbus", "plc-s7", "hmi", "sensor", "web", "api", "database", "windows-desktop",
            "vms", "iot-platform", "bms", "rtu-dnp3"} <= roles
    assert {a.domain for a in city.register} == {"IT", "OT", "IoT"}
    assert {a.security_level for a in city.register} >= {2, 3, 4}
    summary = city.summary()
    assert summary["districts"] == 4 and summary["assets"] == len(city.register) and summary["systems"] >= 12
    # every address sits in one of the city's networks
    assert all(city.network_of(ip) for a in city.register for ip in a.ips)
    assert city.network_of("8.8.8.8") is None


def test_devices_and_hosts_by_role() -> None:
    city = load_city()
    cams = city.devices("camera")
    assert ("cam-0042", "10.20.1.42") in {(d, ip) for _, d, ip in cams}
    assert ("scada-hmi-01", "10.30.9.10") in city.hosts("hmi")
    assert city.register.by_host("hosp-fs-01") is city.asset("hosp-fs")


def test_cli_exports_a_register_that_loads_back(tmp_path: Path) -> None:
    target = tmp_path / "register.csv"
    proc = subprocess.run([sys.executable, "-m", "console.cli", "lab", "city", "--export", str(target)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CITYSOC_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    back = AssetRegister.load(target)
    assert len(back) == summary["assets"] == len(load_city().register)
    plc = back.get("water-plc-ps3")
    assert plc.security_level == 4 and plc.ips == ("10.30.1.10",) and plc.domain == "OT"


def test_every_problem_of_a_bad_city_file_is_reported(tmp_path: Path) -> None:
    text = CITY_FILE.read_text(encoding="utf-8")
    data_platform = "layer: data, security_level: 4, criticality: critical, area: Ba Dinh"
    assert text.count(data_platform) == 1
    text = text.replace(data_platform, data_platform.replace("Ba Dinh", "Hai Ba Trung"))
    text = text.replace("ips: [10.30.2.10]", "ips: [172.31.0.9]", 1)
    bad = tmp_path / "city.yml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(CityError) as err:
        load_city(bad)
    message = str(err.value)
    assert message.startswith("2 problem(s)")
    assert "(data-platform): area 'Hai Ba Trung' is not a district" in message
    assert "(drain-plc-yenso): address 172.31.0.9 is in none of the city's networks" in message
    assert str(bad) in message

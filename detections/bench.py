"""``citysoc bench detect``: single-event rule evaluation speed with 1, 100 and all SigmaHQ Windows rules.

Runs in one process on one thread, so events/s is per core.  Two workloads, both built from
the Windows events of SigmaHQ's regression samples (``../shared/data/sigma-regression``; parsed
once, before timing, by the EVTX-as-JSON parser):

* ``realistic`` -- what a city's Windows/Sysmon stream mostly is: benign events in the shapes
  of the samples (same channels, event ids and fields) with everyday values (browsers, Office,
  svchost, user documents, signed system DLLs; :func:`realistic_stream`, seeded), and 1 % of
  the attack samples themselves spread through it;
* ``worst case`` -- the attack samples only, cycled: every event carries the anchors of the
  rules written for it.

The reference measured in the same run is the evaluator without the field-anchor index: every
routed rule's predicate on every event (:meth:`RuleSet.candidates_for`); the two must find the
same matches, which the benchmark checks.  When the index's per-event loop is compiled
(``detections/sigma/_hitmask.c``), the full pack also runs on its Python specification (with
dict value caches), same run, in the rows marked ``(Python loop)``.  Every measurement runs on
fresh copies of its events (:func:`arriving`), so none gains from string hashes cached by the
one before, and the indexed one runs :data:`REPEATS` times on rule sets of their own
(:func:`_repeated`): the table gives the best per-CPU rate (the run least disturbed by other
processes, as ``timeit`` advises) and the median.  Peak memory is the process's maximum
resident set size.
"""

from __future__ import annotations

import gc
import json
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collectors.base import RawRecord
from collectors.parsers.evtx import WindowsEventParser
from detections.errors import DetectionError
from detections.pack import load_rules
from detections.sigma import index as index_module
from detections.sigma.matcher import CompiledRule, MatchContext, RuleSet
from store.event import Event, Value


class BenchError(DetectionError):
    """The benchmark inputs are missing."""


@dataclass(frozen=True)
class BenchRow:
    workload: str
    rules: int
    events: int
    indexed_eps: float
    reference_eps: float
    matches: int
    #: the indexed rate over the thread's CPU time: events/s per core, whatever else runs on the machine
    #: (the best of REPEATS runs, each on a rule set of its own: the one least disturbed by other processes)
    indexed_cpu_eps: float = 0.0
    #: ... the median of the runs
    indexed_cpu_median: float = 0.0


def regression_events(regression: Path) -> list[Event]:
    """The Windows events of the regression samples' ``.json`` renderings."""
    from detections.hunt import _json_documents  # the hunt's reader of concatenated JSON documents

    parser = WindowsEventParser()
    events: list[Event] = []
    for path in sorted(regression.rglob("*.json")):
        for offset, doc in _json_documents(path.read_text(encoding="utf-8")) or ():
            events += parser.parse(RawRecord(doc, f"file:{path}", str(offset)))
    if not events:
        raise BenchError(f"no Windows events under {regression}: is ../shared/data/sigma-regression checked out?")
    return events


def arriving(events: Sequence[Event]) -> list[Event]:
    """Copies of ``events`` as the store hands them to detection, made before timing.

    Each copy is read back from its stored JSON, so its field names and values are new string
    objects, as every event coming off a parser or the store is: nothing about them (their
    hashes included) is left over from an earlier measurement on the same events.
    """
    return [Event.from_json(event.to_json()) for event in events]


def _rate(events: Sequence[Event], run: Callable[[Event], int]) -> tuple[float, int]:
    wall, _, matches = _rates(events, run)
    return wall, matches


def _rates(events: Sequence[Event], run: Callable[[Event], int]) -> tuple[float, float, int]:
    """Events/s over wall time and over this thread's CPU time, and the number of matches.

    On a shared machine the wall rate also counts the time other processes held the core; the
    CPU rate is what one core delivers, which is what the target (events/s per core) is about.
    """
    matches = 0
    gc.collect()  # the setup's garbage (the event copies just made) is not the measured code's to collect
    start, start_cpu = time.perf_counter(), time.thread_time()
    for event in events:
        matches += run(event)
    wall, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    return len(events) / wall, len(events) / max(cpu, 1e-9), matches


#: runs per measurement of the indexed evaluator
REPEATS = 3


def _repeated(
    rules: Sequence[CompiledRule], base: Sequence[Event], workload: Sequence[Event]
) -> tuple[float, float, float, int, RuleSet]:
    """The indexed evaluator on ``workload``, :data:`REPEATS` times, each on a rule set of its own.

    Each run starts as a stream does after start-up: a new rule set (empty value caches), its
    indexes warmed by the regression samples, and fresh copies of the events (:func:`arriving`),
    so no run gains from the one before.  Returns the wall rate of the run with the best CPU rate,
    that best CPU rate, the median CPU rate, the matches and the last rule set.
    """
    runs: list[tuple[float, float, int]] = []
    ruleset: RuleSet | None = None
    for _ in range(REPEATS):
        ruleset = RuleSet(rules)  # one at a time: the last run's is freed when the next is made
        for event in base:  # warm the per-logsource indexes, as a running stream has
            ruleset.match(event)
        runs.append(_rates(arriving(workload), _indexed(ruleset)))
    if len({matches for _, _, matches in runs}) != 1:
        raise BenchError(f"the runs found different numbers of matches: {[m for _, _, m in runs]}")
    wall, best, matches = max(runs, key=lambda run: run[1])
    assert ruleset is not None  # REPEATS >= 1
    return wall, best, sorted(cpu for _, cpu, _ in runs)[len(runs) // 2], matches, ruleset


def _indexed(ruleset: RuleSet) -> Callable[[Event], int]:
    def run(event: Event) -> int:
        return len(ruleset.match(event))

    return run


def _reference(ruleset: RuleSet) -> Callable[[Event], int]:
    def run(event: Event) -> int:
        ctx = MatchContext(event)
        return sum(1 for rule in ruleset.candidates_for(ruleset._router.logsources(ctx)) if rule.predicate(ctx))

    return run


# --- a realistic stream --------------------------------------------------------------------------
# Benign values for the fields the regression samples carry: everyday Windows binaries in their
# install paths with ordinary arguments, user documents, registry keys Windows writes all day and
# signed system DLLs.  A load generator (seeded), not sample data: it keeps the samples' event
# shapes (channel, event id, field set) and replaces what an attack would put in them.
_SYSTEM32 = "C:\\Windows\\System32\\"
_BINARIES: tuple[tuple[str, str, str, str], ...] = (
    # image, arguments, product, the parent that starts it
    (r"C:\Program Files\Google\Chrome\Application\chrome.exe",
     "--type=renderer --field-trial-handle=1904,i,{n},262144 --lang=en-US --renderer-client-id={n}",
     "Google Chrome", r"C:\Program Files\Google\Chrome\Application\chrome.exe"),
    (r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
     "--type=utility --utility-sub-type=network.mojom.NetworkService --lang=en-US --mojo-platform-channel-handle={n}",
     "Microsoft Edge", r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"),
    (_SYSTEM32 + "svchost.exe", "-k netsvcs -p -s Schedule", "Microsoft Windows Operating System",
     _SYSTEM32 + "services.exe"),
    (_SYSTEM32 + "svchost.exe", "-k LocalServiceNetworkRestricted -p -s EventLog",
     "Microsoft Windows Operating System", _SYSTEM32 + "services.exe"),
    (_SYSTEM32 + "RuntimeBroker.exe", "-Embedding", "Microsoft Windows Operating System", _SYSTEM32 + "svchost.exe"),
    (_SYSTEM32 + "taskhostw.exe", "{{222A245B-E637-4AE9-A93F-A59CA119A75E}}", "Microsoft Windows Operating System",
     _SYSTEM32 + "svchost.exe"),
    (_SYSTEM32 + "SearchProtocolHost.exe",
     r"Global\UsGthrFltPipeMssGthrPipe{n}_ Global\UsGthrCtrlFltPipeMssGthrPipe{n} 1 -2147483646",
     "Microsoft Windows Search", _SYSTEM32 + "SearchIndexer.exe"),
    (r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
     r'/n "C:\Users\{user}\Documents\Report-{n}.docx" /o ""', "Microsoft Office", r"C:\Windows\explorer.exe"),
    (r"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE",
     r'"C:\Users\{user}\Documents\Budget {n}.xlsx"', "Microsoft Office", r"C:\Windows\explorer.exe"),
    (r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE", "/recycle", "Microsoft Office",
     r"C:\Windows\explorer.exe"),
    (_SYSTEM32 + "notepad.exe", r"C:\Users\{user}\Desktop\notes-{n}.txt", "Microsoft Windows Operating System",
     r"C:\Windows\explorer.exe"),
    (r"C:\Program Files\Windows Defender\MsMpEng.exe", "", "Microsoft Defender", _SYSTEM32 + "services.exe"),
    (_SYSTEM32 + r"wbem\WmiPrvSE.exe", "-secured -Embedding", "Microsoft Windows Operating System",
     _SYSTEM32 + "svchost.exe"),
    (r"C:\Program Files\Microsoft VS Code\Code.exe",
     r'--type=gpu-process --user-data-dir="C:\Users\{user}\AppData\Roaming\Code" --gpu-preferences={n}',
     "Visual Studio Code", r"C:\Program Files\Microsoft VS Code\Code.exe"),
    (r"C:\Program Files\7-Zip\7zFM.exe", r'"C:\Users\{user}\Downloads\photos-{n}.zip"', "7-Zip",
     r"C:\Windows\explorer.exe"),
    (r"C:\Windows\explorer.exe", "", "Microsoft Windows Operating System", _SYSTEM32 + "userinit.exe"),
    (r"C:\Program Files\Mozilla Firefox\firefox.exe", "-contentproc -childID {n} -isForBrowser -prefsLen 27000",
     "Firefox", r"C:\Program Files\Mozilla Firefox\firefox.exe"),
)  # fmt: skip
_USERS = ("nguyen.van.an", "tran.thi.binh", "le.minh.chau", "pham.quoc.dung", "hoang.thu.ha", "vu.duc.hieu")
_HOSTS = ("OPS-WS-014", "OPS-WS-027", "TRAFFIC-OPS-03", "WATER-HMI-02", "CITYHALL-PC-118", "DC-APP-07")
_FILES = (r"C:\Users\{user}\AppData\Local\Temp\{hex}.tmp", r"C:\Users\{user}\Documents\Report-{n}.docx",
          r"C:\Users\{user}\AppData\Local\Microsoft\Windows\INetCache\IE\{hex}\image[{n}].png",
          r"C:\ProgramData\Microsoft\Windows Defender\Scans\History\Service\DetectionHistory\{hex}",
          r"C:\Users\{user}\AppData\Roaming\Microsoft\Windows\Recent\Report-{n}.lnk")
_KEYS = (r"HKU\S-1-5-21-{n}-1001\Software\Microsoft\Windows\CurrentVersion\Explorer\RecentDocs\.docx\{n}",
         r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Notifications\Data\{hex}",
         r"HKU\S-1-5-21-{n}-1001\Software\Microsoft\Office\16.0\Word\Reading Locations\Document {n}\Position",
         r"HKLM\System\CurrentControlSet\Services\bam\State\UserSettings\S-1-5-21-{n}-1001\{hex}")
_DLLS = ("kernel32.dll", "ntdll.dll", "user32.dll", "combase.dll", "advapi32.dll", "msvcrt.dll", "ole32.dll",
         "shell32.dll", "crypt32.dll", "wininet.dll")
_PIPES = (r"\mojo.{n}.{n}.{hex}", r"\LOCAL\crashpad_{n}_{hex}", r"\LOCAL\mojo.{n}.{n}.{hex}")


def _benign_values(rnd: random.Random, original: Event) -> dict[str, Value]:
    """New values for the content fields of one event shaped like ``original``."""
    user, host = rnd.choice(_USERS), rnd.choice(_HOSTS)
    n, hexa = rnd.randrange(1, 99_999), f"{rnd.getrandbits(64):016X}"
    image, args, product, parent = rnd.choice(_BINARIES)
    args = args.format(n=n, user=user)
    command = f'"{image}" {args}'.rstrip()
    name = image.rsplit("\\", 1)[-1]
    guid = f"{{{rnd.getrandbits(32):08X}-{rnd.getrandbits(16):04X}-{rnd.getrandbits(16):04X}-0000-{hexa[:12]}}}"
    path = rnd.choice(_FILES).format(user=user, n=n, hex=hexa)
    by_field: dict[str, Value] = {
        "user.name": f"CITY\\{user}", "winlog.event_data.User": f"CITY\\{user}",
        "winlog.event_data.ParentUser": f"CITY\\{user}", "winlog.event_data.SourceUser": "NT AUTHORITY\\SYSTEM",
        "winlog.event_data.TargetUser": f"CITY\\{user}", "winlog.event_data.UserName": user,
        "winlog.event_data.SubjectUserName": user, "winlog.event_data.TargetUserName": user,
        "winlog.event_data.SubjectDomainName": "CITY", "winlog.event_data.TargetDomainName": "CITY",
        "winlog.event_data.TargetServerName": f"{rnd.choice(_HOSTS)}.city.local",
        "winlog.event_data.TargetInfo": f"{rnd.choice(_HOSTS)}.city.local",
        "host.name": host, "winlog.computer_name": host,
        "process.executable": image, "winlog.event_data.Image": image, "winlog.event_data.ProcessName": image,
        "process.command_line": command, "winlog.event_data.CommandLine": command,
        "process.parent.executable": parent, "winlog.event_data.ParentImage": parent,
        "process.parent.command_line": parent, "winlog.event_data.ParentCommandLine": parent,
        "winlog.event_data.OriginalFileName": name, "winlog.event_data.Description": product,
        "winlog.event_data.Product": product, "winlog.event_data.Company": "Microsoft Corporation",
        "winlog.event_data.CurrentDirectory": f"C:\\Users\\{user}\\",
        "winlog.event_data.Hashes": f"SHA256={rnd.getrandbits(256):064X}",
        "winlog.event_data.ProcessGuid": guid, "winlog.event_data.ParentProcessGuid": guid,
        "process.pid": rnd.randrange(4, 65_000), "winlog.event_data.ParentProcessId": rnd.randrange(4, 65_000),
        "winlog.event_data.IntegrityLevel": rnd.choice(("Medium", "Medium", "High", "System")),
        "file.path": path, "winlog.event_data.TargetFilename": path,
        "winlog.event_data.TargetObject": rnd.choice(_KEYS).format(n=n, hex=hexa),
        "winlog.event_data.Details": rnd.choice(("DWORD (0x00000001)", "Binary Data", f"QWORD (0x{hexa})")),
        "winlog.event_data.ImageLoaded": f"C:\\Windows\\System32\\{rnd.choice(_DLLS)}",
        "winlog.event_data.Signed": "true", "winlog.event_data.Signature": "Microsoft Windows",
        "winlog.event_data.SignatureStatus": "Valid",
        "winlog.event_data.SourceImage": r"C:\Program Files\Windows Defender\MsMpEng.exe",
        "winlog.event_data.TargetImage": image, "winlog.event_data.GrantedAccess": "0x1000",
        "winlog.event_data.CallTrace": r"C:\WINDOWS\SYSTEM32\ntdll.dll+9d4c4|C:\WINDOWS\System32\KERNELBASE.dll+2c13e",
        "winlog.event_data.PipeName": rnd.choice(_PIPES).format(n=n, hex=hexa),
        "winlog.event_data.TaskName": f"\\CityApps\\Nightly export {n % 7}",
        "winlog.event_data.IpAddress": f"10.{rnd.randrange(1, 60)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
        "winlog.event_data.IpPort": str(rnd.randrange(49152, 65535)),
    }  # fmt: skip
    values: dict[str, Value] = {k: v for k, v in by_field.items() if k in original.fields}
    if "event.original" in original.fields:  # the raw record says what the fields say, at a similar length
        shown = {k.rsplit(".", 1)[-1]: v for k, v in values.items() if k.startswith("winlog.event_data.")}
        values["event.original"] = json.dumps({"Event": {"System": {"Computer": host}, "EventData": shown}})
    return values


def realistic_stream(attacks: Sequence[Event], count: int, attack_share: float = 0.01, seed: int = 7) -> list[Event]:
    """``count`` events: benign ones in the shapes of ``attacks`` and, spread evenly, ``attack_share`` attacks."""
    rnd = random.Random(seed)  # noqa: S311 -- a reproducible load generator, nothing secret
    every = max(1, round(1 / attack_share)) if attack_share > 0 else 0
    out: list[Event] = []
    for i in range(count):
        template = attacks[i % len(attacks)]
        if every and i % every == every - 1:
            out.append(template)
        else:
            out.append(Event(f"benign-{i}", template.timestamp, {**template.fields, **_benign_values(rnd, template)}))
    return out


def run_bench(
    sigma_windows: Path, regression: Path, events: int = 20_000, reference_events: int = 2_000
) -> tuple[list[BenchRow], int, float]:
    """Rows for 1, 100 and all rules on each workload; peak RSS in KiB; seconds spent loading the pack."""
    base = regression_events(regression)
    start = time.perf_counter()
    loaded = load_rules([sigma_windows])
    load_seconds = time.perf_counter() - start
    compiled: list[CompiledRule] = list(loaded.compiled)
    workloads = {
        "realistic": realistic_stream(base, events),
        "worst case": [base[i % len(base)] for i in range(events)],
    }
    rows = []
    for count in (1, 100, len(compiled)):
        for name, workload in workloads.items():
            reference_workload = workload[:reference_events]
            indexed, indexed_cpu, cpu_median, matches, ruleset = _repeated(compiled[:count], base, workload)
            reference, reference_matches = _rate(arriving(reference_workload), _reference(ruleset))
            indexed_check = sum(len(ruleset.match(e)) for e in reference_workload)
            if indexed_check != reference_matches:
                raise BenchError(
                    f"{name}: indexed evaluation found {indexed_check} matches, the reference {reference_matches}"
                )
            rows.append(BenchRow(name, count, events, indexed, reference, matches, indexed_cpu, cpu_median))
    if index_module._compiled is not None:  # the Python specification of the compiled loop, same run
        compiled_loop, compiled_cache = index_module._compiled, index_module._new_cache
        try:
            index_module._compiled, index_module._new_cache = None, dict
            for name, workload in workloads.items():
                indexed, indexed_cpu, cpu_median, matches, _ = _repeated(compiled, base, workload)
                reference = next(r.reference_eps for r in rows if r.workload == name and r.rules == len(compiled))
                rows.append(BenchRow(f"{name} (Python loop)", len(compiled), events, indexed, reference, matches,
                                     indexed_cpu, cpu_median))  # fmt: skip
        finally:
            index_module._compiled, index_module._new_cache = compiled_loop, compiled_cache
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rows, peak_kib, load_seconds

"""IHE PCD IDCO transmissions as HL7 v2 ORU^R01 messages: read (any number in a file, MLLP framing
allowed) and written. The separators are each message's own (MSH-1 and MSH-2); escape sequences
(\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\) are undone after the split, so an escaped separator
is text. One PID names the patient (PID-3, the MR identifier); OBR-7 is the interrogation's
time; each OBX is one observation whose OBX-3 carries the MDC IDC term, OBX-5 the value, OBX-6
the UCUM unit and OBX-14, when given, its own time. Segments the import has no use for (PV1, ORC,
NTE, ...) are passed over. A place in a message is named by segment and its count ("OBX 7", the
seventh OBX of that message) and by field ("OBX-5")."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from .model import DEVICE_MANUFACTURER, DEVICE_MODEL, DEVICE_SERIAL, MessageError, Reading, Transmission, utc_iso

_SEGMENT_BREAK = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")  # HL7 NM: no exponent, no thousands separator
NUMERIC_TYPES = {"NM", "SN"}
_LOINC_IDC_REPORT = "18750-0^Cardiac electrophysiology report^LN"


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


@dataclass
class Segment:
    name: str
    fields: list[str]  # fields[n] is field n (for MSH as well: fields[1] is MSH-1)
    label: str  # "OBX 7"
    seps: Separators

    def raw(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def components(self, n: int, repetition: int = 0) -> list[str]:
        """Field n's components (of one repetition), each with its escape sequences undone."""
        raw = self.raw(n)
        seps = self.seps
        if not raw:
            return []
        if self.name != "MSH" or n != 2:
            reps = raw.split(seps.repetition) if seps.repetition in raw else [raw]
            if repetition >= len(reps):
                return []
            raw = reps[repetition]
        parts = raw.split(seps.component)
        if seps.subcomponent in raw:
            parts = [p.split(seps.subcomponent)[0] for p in parts]
        if seps.escape in raw:
            parts = [unescape(p, seps, f"{self.label}: {self.name}-{n}") for p in parts]
        return parts

    def component(self, n: int, c: int = 1, repetition: int = 0) -> str:
        """Field n, component c (from 1), of one repetition, with its escape sequences undone."""
        parts = self.components(n, repetition)
        return parts[c - 1] if c - 1 < len(parts) else ""

    def repetitions(self, n: int) -> int:
        return len(self.raw(n).split(self.seps.repetition)) if self.raw(n) else 0

    def fail(self, what: str, n: int | None = None) -> MessageError:
        return MessageError(f"{self.name}-{n}: {what}" if n is not None else what, where=self.label)


# reading


def read_messages(text: str) -> list[Transmission]:
    """Every ORU^R01 message of the text, in order (MessageError at the first wrong one)."""
    messages = list(_split_messages(text))
    if not messages:
        raise MessageError("no MSH segment: the file holds no HL7 v2 message")
    return [_transmission(lines) for lines in messages]


def _split_messages(text: str) -> Iterator[list[str]]:
    text = text.lstrip("\ufeff").replace("\x0b", "").replace("\x1c", "\r")  # MLLP start and end blocks
    current: list[str] = []
    for number, line in enumerate(_SEGMENT_BREAK.split(text), 1):
        if not line.strip():
            continue
        if line.startswith("MSH"):
            if current:
                yield current
            current = [line]
        elif not current:
            raise MessageError(f"line {number}: a message must start with an MSH segment, not {line[:3]!r}")
        else:
            current.append(line)
    if current:
        yield current


def _separators(msh: str) -> Separators:
    if len(msh) < 8:
        raise MessageError(
            "MSH-1 and MSH-2 must give the field separator and the four encoding characters", where="MSH 1"
        )
    field, encoding = msh[3], msh[4:].split(msh[3], 1)[0]
    if len(encoding) < 4:
        raise MessageError(f"MSH-2: expected four encoding characters (like ^~\\&), got {encoding!r}", where="MSH 1")
    chars = [field, *encoding[:4]]
    if len(set(chars)) != 5 or any(c.isalnum() or c.isspace() for c in chars):
        raise MessageError(
            f"MSH-1 and MSH-2: the separators {''.join(chars)!r} must be five different punctuation characters",
            where="MSH 1",
        )
    return Separators(*chars)


def _segments(lines: list[str]) -> list[Segment]:
    seps = _separators(lines[0])
    counts: dict[str, int] = {}
    segments = []
    for line in lines:
        name = line[:3]
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != seps.field):
            raise MessageError(
                f"{line[:12]!r} is not a segment (three capitals, then the field separator {seps.field!r})",
                where=f"segment {len(segments) + 1}",
            )
        counts[name] = counts.get(name, 0) + 1
        fields = line.split(seps.field)
        if name == "MSH":
            fields = ["MSH", seps.field, *fields[1:]]
        segments.append(Segment(name, fields, f"{name} {counts[name]}", seps))
    return segments


def _transmission(lines: list[str]) -> Transmission:
    head = lines[0].split(lines[0][3]) if len(lines[0]) > 3 else []
    named = head[9].strip() if len(head) > 9 else ""  # MSH-10 as written, to name the message in any error
    try:
        segments = _segments(lines)
        return _read(segments, segments[0].component(10))
    except MessageError as exc:
        raise exc.located(message=named or "(no MSH-10)") from None


def _read(segments: list[Segment], control_id: str) -> Transmission:
    msh = segments[0]
    kind = (msh.component(9, 1), msh.component(9, 2))
    if kind != ("ORU", "R01"):
        raise msh.fail(f"the message is {'^'.join(kind)!r}: only ORU^R01 observation results are imported", 9)
    if not control_id:
        raise msh.fail("the message control id is missing", 10)
    pids = [s for s in segments if s.name == "PID"]
    if len(pids) != 1:
        raise MessageError(f"expected one PID segment (one patient per message), found {len(pids)}", where="PID")
    pid = pids[0]
    mrn = _mrn(pid)
    readings: list[Reading] = []
    device: dict[str, str] = {}
    device_where = ""
    when = ""
    first_time = ""
    for seg in segments:
        if seg.name == "OBR":
            when = _time(seg, 7) if seg.raw(7) else ""
            first_time = first_time or when
        elif seg.name == "OBX":
            reading = _reading(seg, when)
            if reading.code in (DEVICE_SERIAL, DEVICE_MODEL, DEVICE_MANUFACTURER):
                device[reading.code] = reading.value
                device_where = device_where or seg.label
            else:
                readings.append(reading)
    if not readings:
        raise MessageError("no OBX segment with an observation: nothing to import", where="OBX")
    return Transmission(
        control_id,
        mrn,
        first_time or min(r.time for r in readings),
        tuple(readings),
        serial=device.get(DEVICE_SERIAL, ""),
        model=device.get(DEVICE_MODEL, ""),
        manufacturer=device.get(DEVICE_MANUFACTURER, ""),
        patient_name=_name(pid),
        patient_where=pid.label,
        device_where=device_where,
    )


def _mrn(pid: Segment) -> str:
    """PID-3's identifier of type MR (the medical record number), else its only one."""
    ids = [(pid.component(3, 1, r), pid.component(3, 5, r)) for r in range(pid.repetitions(3))]
    ids = [(value, kind) for value, kind in ids if value]
    if not ids:
        raise pid.fail("the patient identifier list is empty: the patient's MRN is needed", 3)
    records = [value for value, kind in ids if kind == "MR"]
    if len(records) > 1:
        raise pid.fail(f"more than one MR identifier ({', '.join(records)})", 3)
    if not records and len(ids) > 1:
        raise pid.fail("several identifiers and none of type MR: which one is the MRN is not said", 3)
    return records[0] if records else ids[0][0]


def _name(pid: Segment) -> str:
    family, given = pid.component(5, 1), pid.component(5, 2)
    return " ".join(p for p in (given, family) if p)


def _reading(obx: Segment, obr_time: str) -> Reading:
    identifier = obx.components(3) + [""] * 6
    ids = [identifier[i] for i in (0, 1, 3, 4)]
    code = next((i for i in ids if i.startswith("MDC_")), "")
    system = "MDC" if code else identifier[2]
    if not code:
        code = ids[0] or ids[1]
    if not code:
        raise obx.fail("the observation identifier is empty", 3)
    value_type = obx.raw(2)
    value = obx.component(5) if value_type in NUMERIC_TYPES else _text_value(obx)
    units = obx.components(6) + ["", "", ""]
    unit, unit_system = units[0], units[2]
    if unit_system and unit_system.upper() not in ("UCUM", "UCUM_1"):
        unit = f"{unit} ({unit_system})"  # not a UCUM code: the import says so when it needs the unit
    time = _time(obx, 14) if obx.raw(14) else obr_time
    if not time:
        raise obx.fail("no time: neither OBX-14 nor the OBR-7 before it gives the observation's date and time", 14)
    if value_type in NUMERIC_TYPES and value and not _NUMBER.match(value):
        raise obx.fail(f"{value!r} is not a number (OBX-2 says {value_type})", 5)
    return Reading(code, value, unit, time, obx.label, numeric=value_type in NUMERIC_TYPES, code_system=system)


def _text_value(obx: Segment) -> str:
    """A coded or text value as text: the code of a CWE, the whole of an ST."""
    if obx.raw(2) in ("CWE", "CE", "CNE"):
        return obx.component(5, 2) or obx.component(5, 1)
    return obx.component(5)


def _time(seg: Segment, n: int) -> str:
    raw = seg.component(n)
    utc = _utc(raw)
    if utc.startswith("!"):
        raise seg.fail(utc[1:], n)
    return utc


@functools.lru_cache(maxsize=256)
def _utc(raw: str) -> str:
    """An HL7 DTM in UTC as the store keeps it, or "!" and what is wrong with it (the messages of
    a file share a few times: each is converted once)."""
    found = _DTM.match(raw)
    if not found:
        return f"!{raw!r} is not a date and time to the minute with its UTC offset (YYYYMMDDHHMM[SS]+ZZZZ)"
    year, month, day, hour, minute, second, offset = found.groups()
    sign = 1 if offset[0] == "+" else -1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(float(second or 0)), tzinfo=zone)
    except ValueError as exc:
        return f"!{raw!r} is not a real date and time ({exc})"
    return utc_iso(moment)


def unescape(text: str, seps: Separators, where: str) -> str:
    """The text with HL7 escape sequences undone (MessageError on one not in the standard's list)."""
    esc = seps.escape
    if esc not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] != esc:
            out.append(text[i])
            i += 1
            continue
        end = text.find(esc, i + 1)
        if end < 0:
            raise MessageError(f"an escape sequence is not closed: {text[i:]!r}", where=where)
        out.append(_escaped(text[i + 1 : end], seps, where))
        i = end + 1
    return "".join(out)


def _escaped(code: str, seps: Separators, where: str) -> str:
    simple = {"F": seps.field, "S": seps.component, "T": seps.subcomponent, "R": seps.repetition, "E": seps.escape}
    if code in simple:
        return simple[code]
    if code == ".br":
        return "\n"
    if code in ("H", "N"):  # highlighting on and off: no text
        return ""
    if code.startswith("X") and len(code) > 1 and len(code) % 2 == 1:
        try:
            return bytes.fromhex(code[1:]).decode("utf-8")
        except ValueError:
            pass
    raise MessageError(f"unknown escape sequence {seps.escape}{code}{seps.escape}", where=where)


# writing


def escape(text: str, seps: Separators = Separators()) -> str:
    """Text as an HL7 v2 value: separators and the escape character written as escape sequences."""
    special, codes = _escapes(seps)
    if not special.search(text):
        return text
    return special.sub(lambda m: f"{seps.escape}{codes[m.group()]}{seps.escape}", text)


@functools.lru_cache(maxsize=8)
def _escapes(seps: Separators) -> tuple[re.Pattern[str], dict[str, str]]:
    codes = {
        seps.escape: "E",
        seps.field: "F",
        seps.component: "S",
        seps.subcomponent: "T",
        seps.repetition: "R",
        "\r": ".br",
        "\n": ".br",
    }
    return re.compile("[" + re.escape("".join(codes)) + "]"), codes


def dtm(iso: str) -> str:
    """An ISO 8601 time as HL7 v2 DTM in UTC (20261103020000+0000)."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S") + "+0000"


def write_message(
    t: Transmission,
    *,
    sender: str = "CCC-REMOTE",
    receiver: str = "CCC-WORKSTATION",
    assigning_authority: str = "",
    seps: Separators = Separators(),
) -> str:
    """One ORU^R01 message of the transmission (segments ended by a carriage return)."""
    special, codes = _escapes(seps)

    def e(text: str) -> str:
        if not special.search(text):
            return text
        return special.sub(lambda m: f"{seps.escape}{codes[m.group()]}{seps.escape}", text)

    f, c = seps.field, seps.component
    given, _, family = t.patient_name.partition(" ")  # PID-5 is family^given
    name = f"{e(family)}{c}{e(given)}" if family else e(given)
    segments = [
        f.join(
            [
                "MSH",
                seps.encoding,
                e(sender),
                "",
                e(receiver),
                "",
                dtm(t.time),
                "",
                c.join(["ORU", "R01", "ORU_R01"]),
                e(t.message_id),
                "P",
                "2.6",
            ]
        ),
        f.join(["PID", "1", "", c.join([e(t.mrn), "", "", e(assigning_authority), "MR"]), "", name]),
        f.join(["OBR", "1", "", e(t.message_id), _LOINC_IDC_REPORT.replace("^", c), "", "", dtm(t.time)]),
    ]
    device = [(DEVICE_MANUFACTURER, t.manufacturer), (DEVICE_MODEL, t.model), (DEVICE_SERIAL, t.serial)]
    observations = [(code, "MDC", "ST", e(value), "", "") for code, value in device if value]
    observations += [
        (
            e(r.code),
            e(r.code_system),
            "NM" if r.numeric else "ST",
            e(r.value),
            c.join([e(r.unit), e(r.unit), "UCUM"]) if r.unit else "",
            r.time,
        )
        for r in t.readings
    ]
    for number, (code, system, value_type, value, unit, time) in enumerate(observations, 1):
        fields = ["OBX", str(number), value_type, c.join(["", code, system]), "1", value, unit, "", "", "", "", "F"]
        if time and time != t.time:
            fields += ["", "", dtm(time)]
        segments.append(f.join(fields))
    return "\r".join(segments) + "\r"


def number_text(value: float) -> str:
    """A number as HL7 NM (and FHIR) text: the shortest that reads back the same ("3.01", "520")."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text

"""What one transmission says, whichever format carried it, and how a wrong one is reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# The MDC IDC terms that name the device rather than measure it (IEEE 11073-10103).
DEVICE_SERIAL = "MDC_IDC_DEV_SERIAL"
DEVICE_MODEL = "MDC_IDC_DEV_MDL"
DEVICE_MANUFACTURER = "MDC_IDC_DEV_MFG"


class MessageError(Exception):
    """A message that cannot be imported: which file, which message (MSH-10 control id or Bundle
    id), where in it (a segment such as "OBX 7", or a bundle entry) and what is wrong."""

    def __init__(self, what: str, *, file: str = "", message: str = "", where: str = "") -> None:
        self.what, self.file, self.message, self.where = what, file, message, where
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [self.file, f"message {self.message}" if self.message else "", self.where, self.what]
        return ": ".join(p for p in parts if p)

    def located(self, *, file: str = "", message: str = "") -> MessageError:
        """The same error with the file (and message) it was found in, where it did not say yet."""
        return MessageError(self.what, file=self.file or file, message=self.message or message, where=self.where)


@dataclass(frozen=True)
class Reading:
    """One observation: its MDC IDC reference id ("MDC_IDC_MSMT_BATTERY_VOLTAGE"), the value as
    written, its UCUM unit, its time (ISO 8601, UTC) and where it was in the message."""

    code: str
    value: str
    unit: str
    time: str
    where: str
    numeric: bool = True  # carried as a number (HL7 v2 NM, FHIR valueQuantity)
    code_system: str = "MDC"


@dataclass(frozen=True)
class Transmission:
    """One device interrogation of one patient: the message's id, the patient's MRN, the device
    (serial, model, manufacturer, as far as the message says), its time and its readings."""

    message_id: str
    mrn: str
    time: str
    readings: tuple[Reading, ...]
    serial: str = ""
    model: str = ""
    manufacturer: str = ""
    patient_name: str = ""
    patient_where: str = ""  # where the patient's identifier is ("PID 2", "entry 1 (Patient pat-1)")
    device_where: str = ""


def utc_iso(moment: datetime) -> str:
    """A time as the store keeps it: ISO 8601 in UTC, to the second ("2026-11-03T02:00:00+00:00")."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def read_transmissions(text: str, file: str = "") -> list[Transmission]:
    """Every transmission in a file's text: HL7 v2 messages (starting with MSH, MLLP framing
    allowed) or one FHIR Bundle (JSON). MessageError naming the file, message and place otherwise."""
    from . import fhir, hl7v2

    start = text.lstrip("\ufeff \t\r\n\x0b")
    try:
        if start.startswith("{"):
            return [fhir.read_bundle(text)]
        if start.startswith("MSH"):
            return hl7v2.read_messages(text)
    except MessageError as exc:
        raise exc.located(file=file) from None
    raise MessageError(
        "neither HL7 v2 messages (the first segment must be MSH) nor a FHIR Bundle (a JSON object)", file=file
    )

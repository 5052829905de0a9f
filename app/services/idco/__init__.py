"""Remote-monitoring transmissions as the standards carry them: IHE PCD IDCO (HL7 v2 ORU^R01
messages, ``hl7v2``) and HL7 CardX-CIED style FHIR Observation bundles (``fhir``), both read into
the same ``Transmission`` and written back from it. Pure text in, data out: no store, no
policies (app/services/transmission_import.py does the import)."""

from .model import MessageError, Reading, Transmission, read_transmissions

__all__ = ["MessageError", "Reading", "Transmission", "read_transmissions"]

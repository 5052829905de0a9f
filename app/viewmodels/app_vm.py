"""The app's view-models, one per screen, built together on one ``Workstation`` and wired to
each other's signals (the only place they are)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.services.workstation import Workstation
from app.viewmodels.admin_vm import AdminViewModel
from app.viewmodels.break_glass_vm import BreakGlassViewModel
from app.viewmodels.compliance_vm import ComplianceViewModel
from app.viewmodels.devices_vm import DevicesViewModel
from app.viewmodels.patient_list_vm import PatientListViewModel
from app.viewmodels.personal_vm import PersonalViewModel
from app.viewmodels.record_vm import RecordViewModel
from app.viewmodels.reports_vm import ReportsViewModel
from app.viewmodels.session_vm import SessionViewModel
from app.viewmodels.settings_vm import SettingsViewModel


@dataclass
class ViewModels:
    session: SessionViewModel
    record: RecordViewModel
    patients: PatientListViewModel
    break_glass: BreakGlassViewModel
    devices: DevicesViewModel
    compliance: ComplianceViewModel
    reports: ReportsViewModel
    settings: SettingsViewModel
    personal: PersonalViewModel
    admin: AdminViewModel

    @classmethod
    def build(
        cls, workstation: Workstation, clock: Callable[[], float] = time.monotonic, tick_ms: int = 1000
    ) -> ViewModels:
        """``clock`` and ``tick_ms`` drive the idle lock and the break-glass countdown (a test
        moves the clock; the real timers still fire)."""
        session = SessionViewModel(workstation, clock=clock, tick_ms=tick_ms)
        record = RecordViewModel(session)
        patients = PatientListViewModel(session, record)
        break_glass = BreakGlassViewModel(session, record, tick_ms=tick_ms)
        break_glass.emergency_changed.connect(lambda _session: patients.refresh())
        record.alerts_changed.connect(patients.refresh)
        return cls(
            session,
            record,
            patients,
            break_glass,
            DevicesViewModel(session),
            ComplianceViewModel(session),
            ReportsViewModel(session),
            SettingsViewModel(workstation.settings),
            PersonalViewModel(session, record),
            AdminViewModel(session),
        )

"""Sign-in: with the hospital's provider, one button that opens the hospital's sign-in in the
browser (and Cancel while it waits); in the demo, pick a demo user, type the password, Enter, on a
screen that says these are demo users."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.viewmodels.session_vm import SessionViewModel
from app.viewmodels.settings_vm import SettingsViewModel
from app.views.dialog_parts import Said
from app.views.settings_dialog import SettingsDialog


class SignInView(QWidget):
    def __init__(self, vm: SessionViewModel, settings: SettingsViewModel | None = None) -> None:
        super().__init__()
        self.vm = vm
        self.settings_vm = settings
        self.settings_dialog: SettingsDialog | None = None
        self.user = QComboBox()
        for user_id, label in vm.staff_choices():
            self.user.addItem(label, user_id)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("Password")
        self.password.returnPressed.connect(self.submit)
        self.button = QPushButton("&Sign in")
        self.button.clicked.connect(self.submit)
        self.error = Said()  # a failed sign-in, the lock: no room taken while there is nothing to say
        self.demo_notice = QLabel(
            "<b>Demo users</b> — a demonstration hospital, not for patient care (no hospital sign-in is set up)."
        )
        self.demo_notice.setWordWrap(True)
        self.demo_notice.setVisible(vm.demo)
        self.hospital_button = QPushButton("&Sign in with your hospital account")
        self.hospital_button.clicked.connect(self.full_sign_in)
        self.hospital_button.setVisible(not vm.demo)
        # fast user switching: a PIN chosen at the full sign-in, typed with the user's id (or badge) later
        self.new_pin = self._pin_field("PIN for this shift (4-8 digits, optional)")
        self.resume_id = QLineEdit()
        self.resume_id.setPlaceholderText("Your user id (or scan your badge)")
        self.resume_id.returnPressed.connect(lambda: self.resume_pin.setFocus())  # a badge reader ends with Enter
        self.resume_pin = self._pin_field("PIN")
        self.resume_pin.returnPressed.connect(self.resume)
        self.resume_button = QPushButton("&Resume with PIN")
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button = QPushButton("&Cancel sign-in")
        self.cancel_button.clicked.connect(vm.cancel_provider_sign_in)
        self.cancel_button.hide()
        self.waiting = Said()
        vm.waiting.connect(self._waiting)
        vm.message.connect(self._message)
        vm.signed_in.connect(self._after_sign_out)
        self.keyring_notice = QLabel(vm.keyring_notice)
        self.keyring_notice.setWordWrap(True)
        self.keyring_notice.setVisible(bool(vm.keyring_notice))
        form = QFormLayout()
        form.addRow("&User", self.user)
        form.addRow("&Password", self.password)
        layout = QVBoxLayout(self)
        title = QLabel("<h2>CCC Workstation</h2><p>Connected Cardiac Care — sign in</p>")
        layout.addWidget(title)
        layout.addWidget(self.demo_notice)
        self.demo_form = QWidget()
        demo_layout = QVBoxLayout(self.demo_form)
        demo_layout.setContentsMargins(0, 0, 0, 0)
        demo_layout.addLayout(form)
        demo_layout.addWidget(self.button)
        self.demo_form.setVisible(vm.demo)
        layout.addWidget(self.demo_form)
        self.pin_form = QWidget()
        pins = QFormLayout(self.pin_form)
        pins.setContentsMargins(0, 0, 0, 0)
        pins.addRow("Signed in earlier this shift? &Id", self.resume_id)
        pins.addRow("P&IN", self.resume_pin)
        pins.addRow("", self.resume_button)
        pins.addRow("&New PIN", self.new_pin)
        self.pin_form.setVisible(vm.pin_resume)
        layout.addWidget(self.pin_form)
        layout.addWidget(self.hospital_button)
        layout.addWidget(self.waiting)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.error)
        layout.addWidget(self.keyring_notice)
        self.managed = QLabel(settings.summary if settings is not None else "")
        self.managed.setWordWrap(True)
        self.managed.setVisible(settings is not None and settings.managed)
        self.settings_button = QPushButton("Workstation se&ttings")
        self.settings_button.clicked.connect(self.open_settings)
        self.settings_button.setVisible(settings is not None)
        layout.addWidget(self.managed)
        layout.addWidget(self.settings_button)
        layout.addStretch(1)

    def open_settings(self) -> SettingsDialog | None:
        if self.settings_vm is None:
            return None
        self.settings_dialog = SettingsDialog(self.settings_vm, self)
        self.settings_dialog.open()
        return self.settings_dialog

    @staticmethod
    def _pin_field(placeholder: str) -> QLineEdit:
        field = QLineEdit()
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setPlaceholderText(placeholder)
        field.setMaxLength(8)
        return field

    def full_sign_in(self) -> None:
        """The hospital's sign-in in the browser, with the PIN typed for this shift (if any)."""
        pin = self.new_pin.text()
        self.new_pin.clear()
        self.vm.sign_in_with_provider(pin)

    def resume(self) -> None:
        user_id, pin = self.resume_id.text(), self.resume_pin.text()
        self.resume_pin.clear()  # a wrong PIN is typed again, never appended to
        if self.vm.resume_with_pin(user_id, pin):
            self.resume_id.clear()
            self.error.clear()

    def submit(self) -> None:
        signed_in = self.vm.sign_in(self.user.currentData(), self.password.text())
        self.password.clear()  # a failed password is typed again, never appended to
        if signed_in:
            self.error.clear()

    def _waiting(self, text: str) -> None:
        """While the browser leg runs: what to do, Cancel, and no second sign-in started."""
        self.waiting.setText(text)
        self.cancel_button.setVisible(bool(text))
        self.hospital_button.setEnabled(not text)
        if text:
            self.error.clear()

    def _message(self, text: str) -> None:
        """Only what concerns whoever stands at the sign-in screen (a failed sign-in, the lock):
        a signed-in user's messages go to their status bar and never wait here for the next user."""
        if self.vm.user is None:
            self.error.setText(text)

    def _after_sign_out(self, user: object) -> None:
        """Back on this screen: the locked user is preselected, the password field is empty, and
        nothing said before remains (the lock says why it locked right after)."""
        self.error.clear()
        if user is not None:
            return
        self.password.clear()
        self.resume_id.clear()
        self.resume_pin.clear()
        self.new_pin.clear()
        if self.vm.locked_from is not None:
            self.user.setCurrentIndex(max(0, self.user.findData(self.vm.locked_from[0])))
        if self.vm.demo:
            self.password.setFocus()
        else:
            (self.resume_id if self.vm.pin_resume else self.hospital_button).setFocus()

"""Sign-in: pick a user, type the password, Enter."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.viewmodels.session_vm import SessionViewModel
from app.viewmodels.settings_vm import SettingsViewModel
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
        self.error = QLabel()
        self.error.setWordWrap(True)
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
        layout.addLayout(form)
        layout.addWidget(self.button)
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

    def submit(self) -> None:
        signed_in = self.vm.sign_in(self.user.currentData(), self.password.text())
        self.password.clear()  # a failed password is typed again, never appended to
        if signed_in:
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
        if self.vm.locked_from is not None:
            self.user.setCurrentIndex(max(0, self.user.findData(self.vm.locked_from[0])))
        self.password.setFocus()

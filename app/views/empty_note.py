"""Words inside an empty list or table saying why it is empty: a blank grid tells a reader at
3 a.m. nothing (is it loading, broken, or is there really nothing?)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel

MARGIN = 16  # px between the words and the edges of the view


class EmptyNote(QLabel):
    """Shown over ``view``'s empty area while it has no rows (and hidden as soon as it has some);
    ``say`` changes the words, for a view whose emptiness has more than one reason."""

    def __init__(self, view: QAbstractItemView, text: str) -> None:
        super().__init__(text, view.viewport())
        self.view = view
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        model = view.model()
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.layoutChanged):
            signal.connect(self._update)
        view.viewport().installEventFilter(self)
        self._place()
        self._update()

    def say(self, text: str) -> None:
        self.setText(text)
        self._update()

    @property
    def shown(self) -> bool:
        """Whether a reader of the view sees these words (the view itself may be off screen)."""
        return self.isVisibleTo(self.view)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's naming
        if event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def _place(self) -> None:
        area = self.view.viewport().rect().adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        self.setGeometry(area)

    def _update(self, *_args: object) -> None:
        self.setVisible(self.view.model().rowCount() == 0 and bool(self.text()))
        self.setAccessibleName(self.text())

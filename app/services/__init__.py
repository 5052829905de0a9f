"""The Qt-free service layer the app's view-models call."""

"""Qt view-models: the only UI code that talks to the service layer."""

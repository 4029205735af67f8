"""The app's screens: the scene's diagram (also the replay's stage) and the modal help."""

"""Screens: the main browser, modals, the launch menu and help."""

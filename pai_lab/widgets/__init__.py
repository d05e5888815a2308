"""Notebook panels (ipywidgets 8 / anywidget): dataset preview, labelers, job monitor, service panel.

Each panel lives in its own module and talks to the control plane through the client.
"""

"""Transports: how raw records reach the pipeline (syslog sockets, tailed files)."""

"""Fake provider servers: real HTTP on 127.0.0.1, as strict as each API's docs."""

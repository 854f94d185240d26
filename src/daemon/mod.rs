//! Wiring: the only place that spawns tasks, handles signals or talks to systemd.

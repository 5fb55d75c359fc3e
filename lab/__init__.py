"""The lab: a simulated smart city with labelled attacks. On top of every layer; nothing imports it."""
